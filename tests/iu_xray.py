"""The Indiana University chest X-ray reports (Open-I, "IU X-Ray"), read from a wheel.

The 3,955 XML reports with their MeSH labels ship inside the ``torchxrayvision`` wheel as
``torchxrayvision/data/NLMCXR_reports.tgz``. This module reads that tarball straight out of the
wheel (zipfile + tarfile, nothing extracted) and never imports torchxrayvision. The reports are
licensed CC BY-NC-ND 4.0 (each XML's ``licenseURL``), so no report text is part of this
repository: ``.ci/run`` downloads the wheel into a cache outside the checkout.

Run ``python tests/iu_xray.py`` to print the extractor-vs-MeSH table and the audit's leak
share on the normal reports.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.text.finding_scores import FindingScore

WHEEL_VERSION = "1.5.7"
WHEEL_NAME = f"torchxrayvision-{WHEEL_VERSION}-py3-none-any.whl"
MEMBER = "torchxrayvision/data/NLMCXR_reports.tgz"
MEMBER_SHA256 = "8fb6de7eec73d8c3665067ad4bb003ccd57f971ae316d2642e1627ac7268667a"
LICENSE_URL = "http://creativecommons.org/licenses/by-nc-nd/4.0/"

# MeSH heading (the part before the first "/", lowercase) -> the finding(s) it labels;
# qualifiers after "/" (severity, side, "borderline") do not change the finding. The labels are
# the manually coded <major> headings. The <automatic> headings are machine indexing of the same
# text that ignores hedging ("may represent early pneumonia" is indexed as Pneumonia, while the
# coders wrote Opacity or Airspace Disease), so they are no reference for an uncertainty-aware
# extractor; ``mesh_findings(automatic=True)`` adds them, for comparison only.
MESH_TO_FINDINGS: dict[str, tuple[str, ...]] = {
    "pleural effusion": ("pleural_effusion",),
    "pleural effusions": ("pleural_effusion",),
    "bilateral pleural effusion": ("pleural_effusion",),
    "effusion": ("pleural_effusion",),
    "pneumothorax": ("pneumothorax",),
    "hydropneumothorax": ("pneumothorax",),  # air and fluid in the pleural space
    "hemopneumothorax": ("pneumothorax",),
    "cardiomegaly": ("cardiomegaly",),
    "consolidation": ("consolidation",),
    "pneumonia": ("pneumonia",),
    "emphysema": ("emphysema",),
    "emphysemas": ("emphysema",),
    "pulmonary emphysema": ("emphysema",),
    "bullous emphysema": ("emphysema",),
}

# The findings the real-text test scores: consolidation and pneumonia count as one.
SCORED: dict[str, tuple[str, ...]] = {
    "pleural effusion": ("pleural_effusion",),
    "pneumothorax": ("pneumothorax",),
    "cardiomegaly": ("cardiomegaly",),
    "consolidation/pneumonia": ("consolidation", "pneumonia"),
    "emphysema": ("emphysema",),
}


@dataclass(frozen=True)
class IUReport:
    """One report: its id, FINDINGS + IMPRESSION text, and MeSH headings."""

    uid: str
    text: str
    major: tuple[str, ...]
    automatic: tuple[str, ...]

    @property
    def normal(self) -> bool:
        return [m.lower() for m in self.major] == ["normal"]

    def mesh_findings(self, automatic: bool = False) -> frozenset[str]:
        """The findings the major (and, if asked, automatic) MeSH headings label."""
        out: set[str] = set()
        for heading in (*self.major, *(self.automatic if automatic else ())):
            head, *qualifiers = [part.strip().lower() for part in heading.split("/")]
            out.update(MESH_TO_FINDINGS.get(head, ()))
            if head == "cardiac shadow" and "enlarged" in qualifiers:
                out.add("cardiomegaly")  # "enlarged cardiac silhouette" is coded this way
        return frozenset(out)


def wheel_path() -> Path:
    """``$CXR_HARNESS_IU_WHEEL``, else the wheel in ``$XDG_CACHE_HOME/cxr-harness``."""
    if os.environ.get("CXR_HARNESS_IU_WHEEL"):
        return Path(os.environ["CXR_HARNESS_IU_WHEEL"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "cxr-harness" / WHEEL_NAME


def _parse(uid: str, xml: bytes) -> IUReport:
    root = ET.fromstring(xml)
    license_url = (root.findtext("licenseURL") or "").strip()
    if license_url != LICENSE_URL:
        raise ValueError(f"{uid}: unexpected license {license_url!r}")
    sections = {a.get("Label"): (a.text or "").strip() for a in root.iter("AbstractText")}
    text = " ".join(s for s in (sections.get("FINDINGS"), sections.get("IMPRESSION")) if s)
    mesh = root.find("MeSH")
    major = tuple((e.text or "").strip() for e in mesh.iter("major")) if mesh is not None else ()
    auto = tuple((e.text or "").strip() for e in mesh.iter("automatic")) if mesh is not None else ()
    return IUReport(uid, text, major, auto)


def load_reports(path: Path | None = None) -> list[IUReport]:
    """Every report of the wheel's tarball that has FINDINGS or IMPRESSION text."""
    with zipfile.ZipFile(path or wheel_path()) as wheel:
        blob = wheel.read(MEMBER)
    digest = hashlib.sha256(blob).hexdigest()
    if digest != MEMBER_SHA256:
        raise ValueError(f"{MEMBER} has sha256 {digest}, expected {MEMBER_SHA256}")
    reports = []
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".xml"):
                handle = tar.extractfile(member)
                assert handle is not None
                report = _parse(Path(member.name).stem, handle.read())
                if report.text:
                    reports.append(report)
    return reports


def agreement(reports: Iterable[IUReport], automatic: bool = False) -> list[FindingScore]:
    """Per scored finding: extractor's positive findings vs the MeSH labels."""
    from harness.text.findings import positive_findings

    counts = {name: [0, 0, 0] for name in SCORED}
    for report in reports:
        found, gold = positive_findings(report.text), report.mesh_findings(automatic)
        for name, keys in SCORED.items():
            said, truth = bool(found & set(keys)), bool(gold & set(keys))
            counts[name][0 if said and truth else 1 if said else 2] += said or truth
    return [FindingScore(name, *c) for name, c in counts.items()]


def normal_leak_share(reports: Iterable[IUReport]) -> tuple[float, int, dict[str, int]]:
    """The audit's leak share on the MeSH-normal reports, their count and the leaked keywords."""
    from harness.text.audit import audit_texts

    normal = [r.text for r in reports if r.normal]
    row = audit_texts({"Normal": normal})["Normal"]
    return row["leak_share"], row["count"], row["leak_keywords"]


def table(rows: Iterable[FindingScore]) -> str:
    lines = ["| finding | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [
        f"| {a.finding} | {a.precision:.3f} | {a.recall:.3f} | {a.f1:.3f} | {a.support} |"
        for a in rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    all_reports = load_reports(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(f"{len(all_reports)} reports with FINDINGS or IMPRESSION text")
    print("extractor vs major MeSH headings (the reference):")
    print(table(agreement(all_reports)))
    print("extractor vs major + automatic MeSH headings (machine indexing, for comparison):")
    print(table(agreement(all_reports, automatic=True)))
    share, n, words = normal_leak_share(all_reports)
    print(
        f"audit leak share on {n} MeSH-normal reports: {share:.2%} {dict(list(words.items())[:8])}"
    )
