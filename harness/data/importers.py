"""Importers: an image-folder tree, a saved Hugging Face dataset, or a CSV/JSONL manifest.

Each produces the same :class:`ImportResult` - records (one file's bytes or path, a canonical
label and an optional reference report) plus what was skipped and why. Decoding happens later,
in the build (in parallel), so a bad file is skipped there and listed, never fatal.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.errors import DataError, OptionError
from harness.data.benchmark import Benchmark
from harness.data.images import encode_png
from harness.data.labels import ALL_CLASSES, ENCAPSULATED
from harness.data.sample import Sample

# The Kaggle "X-ray Lung Diseases Images (9 classes)" folders: `00 Anatomia Normal` ...
# `08 Alterações do Tórax`, matched by their two-digit prefix.
KAGGLE_CODES: dict[str, str] = {
    "00": "Normal",
    "01": "Inflammatory_Pneumonia",
    "02": "Higher_Density",
    "03": "Lower_Density",
    "04": "Obstructive",
    "05": "Degenerative_Infectious",
    "06": ENCAPSULATED,
    "07": "Mediastinal_Changes",
    "08": "Chest_Changes",
}
REPORT_SUFFIXES = (".txt",)  # `x.png` + `x.txt` next to it: the .txt is x's reference report


@dataclass(frozen=True)
class Record:
    """One source image before decoding: a file path or in-memory bytes, label and report."""

    source: str  # how the user names it: a path relative to the source, or "split[index]"
    label: str
    report: str = ""
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)
    suffix: str = ".png"

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str
    detail: str = ""


@dataclass
class ImportResult:
    kind: str
    source: str
    records: list[Record] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)  # label -> records left out by option

    @property
    def classes(self) -> tuple[str, ...]:
        present = {r.label for r in self.records}
        return tuple(c for c in ALL_CLASSES if c in present) + tuple(
            sorted(present - set(ALL_CLASSES))
        )


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFC", str(text)).strip()
    return re.sub(r"[\s_\-]+", "_", text).casefold()


_CANONICAL = {_norm(c): c for c in ALL_CLASSES}


def canonical_label(name: object, label_map: Mapping[str, str] | None = None) -> str | None:
    """Map a folder name / label value to a canonical class, or None if it is unknown.

    Order: the user's ``label_map`` (exact, NFC-normalised), a canonical class name
    (case/space/underscore-insensitive), then a Kaggle two-digit code prefix (``00``..``08``).
    """
    text = unicodedata.normalize("NFC", str(name)).strip()
    for key, value in (label_map or {}).items():
        if unicodedata.normalize("NFC", key).strip() == text:
            return _CANONICAL.get(_norm(value), value)
    if _norm(text) in _CANONICAL:
        return _CANONICAL[_norm(text)]
    match = re.match(r"^(\d{2})(?:\D|$)", text)
    if match and match.group(1) in KAGGLE_CODES:
        return KAGGLE_CODES[match.group(1)]
    return None


def _keep(label: str, include_encapsulated: bool, result: ImportResult) -> bool:
    if label == ENCAPSULATED and not include_encapsulated:
        result.excluded[label] = result.excluded.get(label, 0) + 1
        return False
    return True


def import_folder(
    root: Path,
    label_map: Mapping[str, str] | None = None,
    include_encapsulated: bool = False,
    *,
    follow_symlinks: bool = False,
) -> ImportResult:
    """One sub-folder per class (searched recursively). ``x.txt`` beside ``x.png`` is its report.

    A symlink resolving outside ``root`` is listed and never read, unless ``follow_symlinks``.
    An unmappable folder with no files in it is listed as ``empty-folder``, not an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    result = ImportResult(kind="folder", source=str(root))
    real_root = root.resolve()
    unknown = []
    for entry in sorted(root.iterdir()):
        rel = entry.relative_to(root).as_posix()
        if _skip_link(entry, root, real_root, result, follow_symlinks):
            continue
        if entry.is_file():
            result.skipped.append(Skipped(rel, "outside-class-folder"))
            continue
        label = canonical_label(entry.name, label_map)
        found = sorted(p for p in entry.rglob("*") if p.is_file() or p.is_symlink())
        if label is None and not found:
            result.skipped.append(Skipped(rel, "empty-folder", "no files; not a class name"))
            continue
        if label is None:
            unknown.append(entry.name)
            continue
        files = [
            p
            for p in found
            if not _skip_link(p, root, real_root, result, follow_symlinks) and p.is_file()
        ]
        reports = {p.with_suffix(""): p for p in files if p.suffix.lower() in REPORT_SUFFIXES}
        images = [p for p in files if p.suffix.lower() not in REPORT_SUFFIXES]
        stems = {p.with_suffix("") for p in images}
        for stem, report_path in reports.items():  # a .txt with no image beside it
            if stem not in stems:
                rel_report = report_path.relative_to(root).as_posix()
                result.skipped.append(Skipped(rel_report, "report-without-image"))
        if not images:
            result.empty_classes.append(f"{entry.name} ({label})")
            continue
        for path in images:
            if not _keep(label, include_encapsulated, result):
                continue
            report_path = reports.get(path.with_suffix(""))
            report = report_path.read_text(encoding="utf-8").strip() if report_path else ""
            result.records.append(
                Record(
                    path.relative_to(root).as_posix(),
                    label,
                    report,
                    path=path,
                    suffix=path.suffix.lower() or ".bin",
                )
            )
    if unknown:
        raise DataError(
            f"{root}: folder(s) {', '.join(repr(u) for u in unknown)} do not map to a class; "
            f"name them after a class ({', '.join(ALL_CLASSES)}), prefix a Kaggle code 00-08, "
            "or pass --map 'FOLDER=LABEL'"
        )
    return result


def _skip_link(
    path: Path, root: Path, real_root: Path, result: ImportResult, follow: bool = False
) -> bool:
    """Skip (and list) a path that leads out of the source tree or nowhere; never read it.

    Symlinks whose target lies inside the source (or anywhere, with ``follow``) are followed
    like any file or folder.
    """
    rel = path.relative_to(root).as_posix()
    try:
        target = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        result.skipped.append(Skipped(rel, "broken-symlink", "symlink loop"))
        return True
    if not follow and not target.is_relative_to(real_root):
        result.skipped.append(Skipped(rel, "symlink-outside-source", f"points to {target}"))
        return True
    if path.is_symlink() and not path.exists():
        result.skipped.append(Skipped(rel, "broken-symlink", f"points to {target}"))
        return True
    return False


def import_hf(
    path: Path,
    image_column: str = "image",
    text_column: str | None = "text",
    label_column: str = "__class__",
    label_map: Mapping[str, str] | None = None,
    include_encapsulated: bool = False,
) -> ImportResult:
    """A ``datasets`` folder written by ``save_to_disk`` (a Dataset or a DatasetDict)."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise DataError(f"{path}: not a saved Hugging Face dataset ({exc})") from None
    parts = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"data": loaded}
    result = ImportResult(kind="hf", source=str(path))
    unknown: Counter[str] = Counter()
    for split, ds in parts.items():
        for col, opt in ((image_column, "--image-column"), (label_column, "--label-column")):
            if col not in ds.column_names:
                raise OptionError(
                    f"{opt} {col!r} not in {path} ({split}); columns: {', '.join(ds.column_names)}"
                )
        texts = text_column if text_column and text_column in ds.column_names else None
        feature = ds.features[label_column]
        names = getattr(feature, "names", None)
        if isinstance(ds.features[image_column], datasets.Image):
            ds = ds.cast_column(image_column, datasets.Image(decode=False))
        for i, row in enumerate(ds):
            source = f"{split}[{i}]"
            raw_label = row[label_column]
            value = (
                names[raw_label] if names is not None and isinstance(raw_label, int) else raw_label
            )
            label = canonical_label(value, label_map)
            if label is None:
                unknown[str(value)] += 1
                continue
            if not _keep(label, include_encapsulated, result):
                continue
            cell = row[image_column]
            data = cell.get("bytes") if isinstance(cell, dict) else cell
            if data is None and isinstance(cell, dict) and cell.get("path"):
                try:
                    data = Path(cell["path"]).read_bytes()
                except OSError as exc:
                    result.skipped.append(Skipped(source, "unreadable", str(exc)))
                    continue
            if not isinstance(data, bytes):
                result.skipped.append(Skipped(source, "not-an-image", f"{type(cell).__name__}"))
                continue
            report = str(row[texts] or "").strip() if texts else ""
            result.records.append(Record(source, label, report, data=data, suffix=".png"))
    if unknown:
        raise DataError(
            f"{path}: label value(s) {dict(unknown)} in column {label_column!r} do not map to a "
            "class; pass --map 'VALUE=LABEL'"
        )
    return result


def import_manifest(
    path: Path,
    label_map: Mapping[str, str] | None = None,
    include_encapsulated: bool = False,
) -> ImportResult:
    """A CSV (header ``path,label[,report]``) or JSONL manifest; paths relative to its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot read manifest ({exc})") from None
    if path.suffix.lower() == ".csv":
        rows = [(n + 2, r) for n, r in enumerate(csv.DictReader(text.splitlines()))]
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
    result = ImportResult(kind="manifest", source=str(path))
    for n, row in rows:
        if not isinstance(row, dict) or not row.get("path") or not row.get("label"):
            raise DataError(f"{path}:{n}: a row needs 'path' and 'label'")
        label = canonical_label(row["label"], label_map)
        if label is None:
            raise DataError(f"{path}:{n}: label {row['label']!r} does not map to a class")
        if not _keep(label, include_encapsulated, result):
            continue
        file = (path.parent / str(row["path"])).resolve()
        if not file.is_file():
            result.skipped.append(Skipped(str(row["path"]), "missing", f"line {n}"))
            continue
        report = str(row.get("report") or "").strip()
        result.records.append(
            Record(str(row["path"]), label, report, path=file, suffix=file.suffix.lower() or ".bin")
        )
    return result


def import_samples(samples: Sequence[Sample], source: str) -> ImportResult:
    """In-memory samples (e.g. the phantom8 pool), PNG-encoded, through the same machinery."""
    result = ImportResult(kind="samples", source=source)
    for s in samples:
        result.records.append(Record(s.id, s.label, s.report, data=encode_png(s.image)))
    return result


def import_source(
    source: str,
    label_map: Mapping[str, str] | None = None,
    include_encapsulated: bool = False,
    image_column: str = "image",
    text_column: str | None = "text",
    label_column: str = "__class__",
    *,
    follow_symlinks: bool = False,
    plugin_benchmark: Callable[[str], Benchmark | None] | None = None,
) -> ImportResult:
    """Pick the importer from the source: a benchmark plugin's name (e.g. ``phantom8``, found
    through ``plugin_benchmark``, which the host passes in), a saved HF dataset, a folder, a
    manifest."""
    b = plugin_benchmark(source) if plugin_benchmark is not None else None
    if b is not None:
        return import_samples([*b.train, *b.val, *b.test], source)
    path = Path(source)
    if not path.exists():
        raise DataError(f"{source}: no such file or folder")
    if path.is_dir():
        hf_markers = ("dataset_info.json", "dataset_dict.json", "state.json")
        if any((path / m).exists() for m in hf_markers):
            return import_hf(
                path, image_column, text_column, label_column, label_map, include_encapsulated
            )
        return import_folder(path, label_map, include_encapsulated, follow_symlinks=follow_symlinks)
    if path.suffix.lower() in (".csv", ".jsonl"):
        return import_manifest(path, label_map, include_encapsulated)
    raise DataError(f"{source}: expected a folder, a saved dataset, or a .csv/.jsonl manifest")
