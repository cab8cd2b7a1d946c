"""Frozen manifest benchmarks under ``benchmarks/NAME/``: build, verify, check leakage, load.

Layout: ``images/LABEL/FILE`` (byte copies of the kept source files), ``manifest.jsonl`` (one row
per image: id, path, sha256, label, group, split, report), ``benchmark.json`` (classes, counts,
fingerprint over the whole manifest, hash settings, caveats) and ``build_report.json`` (every
skipped file with its reason, empty class folders, dropped exact copies, label conflicts).

The split is group-aware: exact and near duplicates are unioned into groups (harness.data.dedup)
and a
whole group goes to one split, stratified per class. A group whose members carry different
labels is excluded. ``harness.data.leakage.check_leakage`` applies the same two-stage definition
(hash
candidates, thumbnail verification; settings read from ``benchmark.json``), so it finds no
cross-split pair in a benchmark built here.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.atomic import follow_umask, write_text_atomic
from harness.core.errors import DataError, OptionError
from harness.core.pool import ProgressFn, parallel_map
from harness.core.rng import derive_seed
from harness.data.benchmark import Benchmark
from harness.data.dedup import (
    DEFAULT_HASH,
    HashConfig,
    group_duplicates,
    image_thumbnail,
    perceptual_hash,
    pixel_sha256,
)
from harness.data.images import DEFAULT_MAX_PIXELS, ImageLoadError, decode_image
from harness.data.importers import ImportResult, Record, Skipped
from harness.data.layout import (
    DEFAULT_ROOT,
    IMAGES,
    MANIFEST,
    META,
    REPORT,
    SPLITS,
    read_manifest,
    resolve_dir,
)
from harness.data.leakage import check_leakage_dir
from harness.data.sample import Sample

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class BuildResult:
    path: Path
    fingerprint: str
    counts: dict[str, dict[str, int]]
    report: dict[str, Any]
    leakage_pairs: int


@dataclass
class VerifyResult:
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    fingerprint_ok: bool = True

    @property
    def ok(self) -> bool:
        return self.fingerprint_ok and not (self.changed or self.missing or self.extra)


def _analyse(args: tuple[Record, HashConfig, int]) -> dict[str, Any]:
    """Worker: read, hash the file, decode, hash the pixels and perceptually."""
    record, cfg, max_pixels = args
    try:
        data = record.read()
    except OSError as exc:
        return {"skip": Skipped(record.source, "unreadable", str(exc))}
    try:
        image = decode_image(data, record.source, max_pixels)
    except ImageLoadError as exc:
        return {"skip": Skipped(record.source, exc.reason, exc.detail)}
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "pixels": pixel_sha256(image),
        "phash": perceptual_hash(image, cfg),
        "thumb": image_thumbnail(image, cfg),
    }


def split_groups(
    groups: dict[str, tuple[str, int]], val: float, test: float, seed: int
) -> dict[str, str]:
    """Assign each group (id -> (label, size)) to a split, stratified per label.

    Per label, groups are shuffled (seeded), ordered largest first, and each goes to the split
    furthest below its target share of that label's images.
    """
    if val < 0 or test <= 0 or val + test >= 1:
        raise OptionError(f"--val {val} / --test {test}: need val >= 0, test > 0, val + test < 1")
    shares = {"train": 1.0 - val - test, "val": val, "test": test}
    by_label: dict[str, list[str]] = defaultdict(list)
    for gid, (label, _) in sorted(groups.items()):
        by_label[label].append(gid)
    out: dict[str, str] = {}
    for label, gids in sorted(by_label.items()):
        rng = np.random.default_rng(derive_seed("split", seed, label))
        gids = [gids[i] for i in rng.permutation(len(gids))]
        gids.sort(key=lambda g: -groups[g][1])
        total = sum(groups[g][1] for g in gids)
        filled = dict.fromkeys(SPLITS, 0)
        for gid in gids:
            split = max(SPLITS[::-1], key=lambda s: shares[s] * total - filled[s])
            out[gid] = split
            filled[split] += groups[gid][1]
    return out


def manifest_fingerprint(classes: list[str], rows: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256(json.dumps(list(classes)).encode())
    for row in sorted(rows, key=lambda r: r["path"]):
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:60] or "image"


def build_benchmark(
    imported: ImportResult,
    name: str,
    root: Path = DEFAULT_ROOT,
    *,
    val: float = 0.1,
    test: float = 0.2,
    seed: int = 0,
    hash_config: HashConfig = DEFAULT_HASH,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> BuildResult:
    """Hash, de-duplicate, split group-aware and write ``root/name`` atomically."""
    if not _NAME.match(name):
        raise OptionError(f"--name {name!r}: use letters, digits, '.', '_' or '-'")
    dest = Path(root) / name
    if dest.exists() and not overwrite:
        raise OptionError(f"{dest} already exists; pick another --name or pass --overwrite")
    records = imported.records
    jobs = [(r, hash_config, max_pixels) for r in records]
    infos = parallel_map(_analyse, jobs, workers, progress, "decode + hash")
    skipped = list(imported.skipped) + [i["skip"] for i in infos if "skip" in i]
    good = [(r, i) for r, i in zip(records, infos, strict=True) if "skip" not in i]
    grouping = group_duplicates(
        [i["pixels"] for _, i in good],
        [i["phash"] for _, i in good],
        hash_config,
        [i["thumb"] for _, i in good],
        workers,
        progress,
    )
    members = grouping.members()
    conflicts, exact_dropped, groups, kept = [], [], {}, []
    for _, idx in sorted(members.items()):
        labels = sorted({good[i][0].label for i in idx})
        gid = "g" + min(good[i][1]["pixels"] for i in idx)[:12]
        if len(labels) > 1:
            who = [[good[i][0].source, good[i][0].label] for i in idx]
            conflicts.append({"group": gid, "labels": labels, "members": who})
            continue
        alive = [i for i in idx if i not in grouping.exact_of]
        for i in idx:
            if i in grouping.exact_of:
                kept_src = good[grouping.exact_of[i]][0].source
                exact_dropped.append({"source": good[i][0].source, "copy_of": kept_src})
        groups[gid] = (labels[0], len(alive))
        kept += [(i, gid) for i in alive]
    assignment = split_groups(groups, val, test, seed)
    pairs, used = [], set()
    for i, gid in kept:
        rec, info = good[i]
        stem = _safe(Path(rec.source).stem)
        rel = f"{IMAGES}/{rec.label}/{stem}-{info['sha256'][:10]}{rec.suffix}"
        if rel in used:  # identical bytes under the same stem: already dropped as exact copies
            raise DataError(f"{rec.source}: duplicate output path {rel}")
        used.add(rel)
        row = {
            "id": f"{rec.label}/{stem}-{info['sha256'][:10]}",
            "path": rel,
            "sha256": info["sha256"],
            "label": rec.label,
            "group": gid,
            "split": assignment[gid],
            "report": rec.report,
            "source": rec.source,
        }
        pairs.append((row, rec))
    pairs.sort(key=lambda p: (SPLITS.index(p[0]["split"]), p[0]["label"], p[0]["path"]))
    rows = [row for row, _ in pairs]
    classes = [c for c in imported.classes if any(r["label"] == c for r in rows)]
    if not rows:
        raise DataError(f"{imported.source}: no usable images (skipped {len(skipped)})")
    counts = {s: dict(Counter(r["label"] for r in rows if r["split"] == s)) for s in SPLITS}
    fp = manifest_fingerprint(classes, rows)
    sizes = Counter(n for _, n in groups.values())
    report = {
        "source": {"kind": imported.kind, "path": imported.source},
        "records": len(records) + len(imported.skipped),
        "kept": len(rows),
        "skipped": [vars(s) for s in skipped],
        "skipped_by_reason": dict(Counter(s.reason for s in skipped)),
        "empty_classes": imported.empty_classes,
        "excluded_by_option": imported.excluded,
        "exact_duplicates_dropped": exact_dropped,
        "near_duplicate_groups": sum(v for k, v in sizes.items() if k > 1),
        "images_in_near_duplicate_groups": sum(k * v for k, v in sizes.items() if k > 1),
        "largest_group": max(sizes, default=0),
        "near_pairs": grouping.near_pairs,
        "near_candidates": grouping.candidates,
        "label_conflicts": conflicts,
    }
    n_conf = sum(len(c["members"]) for c in conflicts)
    caveats = [
        f"de-duplicated at build ({hash_config.describe()}): "
        f"{len(exact_dropped)} exact copies dropped, "
        f"{report['near_duplicate_groups']} duplicate groups "
        f"({report['images_in_near_duplicate_groups']} images) kept within one split, "
        f"{len(conflicts)} label-conflict groups ({n_conf} images) excluded, "
        f"{len(skipped)} unreadable files skipped."
    ]
    if not any(r["report"] for r in rows):
        caveats.append("No reference reports: ROUGE-L is not reported for this benchmark.")
    meta = {
        "name": name,
        "classes": classes,
        "fingerprint": fp,
        "counts": counts,
        "split": {"val": val, "test": test, "seed": seed},
        "hash": hash_config.as_dict(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "caveats": caveats,
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=dest.parent))
    try:
        for n, (row, rec) in enumerate(pairs, start=1):
            target = stage / row["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(rec.read())
            if progress and (n % 50 == 0 or n == len(rows)):
                progress("write images", n, len(rows))
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        write_text_atomic(stage / MANIFEST, text)
        write_text_atomic(stage / META, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        leak = check_leakage_dir(stage, workers=workers, progress=progress)
        report["leakage_pairs_at_build"] = len(leak.pairs)
        write_text_atomic(stage / REPORT, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        follow_umask(stage)  # mkdtemp made it 0700
        if dest.exists():
            shutil.rmtree(dest)
        stage.rename(dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return BuildResult(dest, fp, counts, report, len(leak.pairs))


def _sha_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def verify(
    name: str,
    root: Path = DEFAULT_ROOT,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> VerifyResult:
    """Re-hash every file: report changed, missing and extra files and a fingerprint mismatch."""
    path = resolve_dir(name, root)
    meta, rows = read_manifest(path)
    result = VerifyResult(
        fingerprint_ok=manifest_fingerprint(meta["classes"], rows) == meta.get("fingerprint")
    )
    hashes = parallel_map(_sha_file, [path / r["path"] for r in rows], workers, progress, "re-hash")
    for row, digest in zip(rows, hashes, strict=True):
        if digest is None:
            result.missing.append(row["path"])
        elif digest != row["sha256"]:
            result.changed.append(row["path"])
    listed = {r["path"] for r in rows}
    on_disk = {p.relative_to(path).as_posix() for p in (path / IMAGES).rglob("*") if p.is_file()}
    result.extra = sorted(on_disk - listed)
    return result


def _load_row(args: tuple[Path, dict[str, Any]]) -> Sample:
    base, row = args
    data = (base / row["path"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != row["sha256"]:
        raise DataError(
            f"{base / row['path']}: changed since build; run `harness benchmark verify`"
        )
    image = decode_image(data, str(base / row["path"]), 2**62)
    return Sample(
        id=row["id"],
        label=row["label"],
        image=image,
        report=row.get("report", ""),
        group=row["group"],
    )


def load_manifest_benchmark(
    name: str,
    root: Path = DEFAULT_ROOT,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> Benchmark:
    """Load a built benchmark; the manifest fingerprint and every file's SHA-256 are checked."""
    path = resolve_dir(name, root)
    meta, rows = read_manifest(path)
    if manifest_fingerprint(meta["classes"], rows) != meta.get("fingerprint"):
        raise DataError(f"{path / MANIFEST}: fingerprint mismatch (edited after build?)")
    missing = [r["path"] for r in rows if not (path / r["path"]).is_file()]
    if missing:
        raise DataError(f"{path}: {len(missing)} image(s) missing, e.g. {missing[0]}")
    samples = parallel_map(_load_row, [(path, r) for r in rows], workers, progress, "load images")
    splits: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for row, sample in zip(rows, samples, strict=True):
        splits[row["split"]].append(sample)
    return Benchmark(
        name=meta["name"],
        classes=tuple(meta["classes"]),
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        fingerprint=meta["fingerprint"],
        caveats=list(meta.get("caveats", [])),
    )
