"""Every folder of the two packages that holds Python files or data is listed in pyproject.toml,
and every data file is covered by package-data: an unlisted one is left out of a wheel (and
setuptools prints a long warning about it during install)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_folders() -> dict[str, Path]:
    """Package name -> folder, for every folder below the package roots that holds a file."""
    found = {}
    for name, folder in _config()["package-dir"].items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                rel = path.parent.relative_to(ROOT / folder)
                found[".".join([name, *rel.parts])] = path.parent
    return found


def test_every_folder_with_files_is_a_listed_package() -> None:
    listed = set(_config()["packages"])
    folders = _package_folders()
    assert sorted(set(folders) - listed) == []
    assert sorted(listed - set(folders)) == []  # and nothing listed that does not exist


def test_every_data_file_is_package_data() -> None:
    data = _config()["package-data"]
    uncovered = []
    for package, folder in _package_folders().items():
        for path in folder.iterdir():
            if not path.is_file() or path.suffix in {".py", ".pyc"}:
                continue
            covered = False
            parts = package.split(".")
            for owner in (".".join(parts[:i]) for i in range(len(parts), 0, -1)):
                rel = path.relative_to(_folder_of(owner)).as_posix()
                if any(fnmatch.fnmatch(rel, pat) for pat in data.get(owner, [])):
                    covered = True
                    break
            if not covered:
                uncovered.append(f"{package}: {path.name}")
    assert uncovered == []


def _folder_of(package: str) -> Path:
    top, *rest = package.split(".")
    return ROOT / _config()["package-dir"][top] / Path(*rest)
