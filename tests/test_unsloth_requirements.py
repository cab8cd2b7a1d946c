"""An installed unsloth that declares it does not support the installed libraries is refused
before any work (``backend=unsloth``) or passed over (``backend=auto`` picks hf and says why).

Every unsloth release up to 2026.10.9 declares ``transformers<=5.17.0`` and ``trl<=1.15.0``; the
harness pins 5.23.0 and 1.16.0. On the GPU such an unsloth imported, patched transformers and
then ran past a 500 s limit on a 3-step run, so the harness no longer tries.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.core.errors import BackendUnavailableError
from harness.plugins import make_registry

REQUIRES = [
    "unsloth_zoo>=2026.10.9",
    "transformers!=5.0.0,<=5.17.0,>=4.52.4",
    "trl!=0.19.0,<=1.15.0,>=0.18.2",
    "torch<2.15.0,>=2.4.0",
    "xformers>=0.0.27; platform_machine == 'x86_64' or platform_machine == 'AMD64'",
    "mlx==0.32.4; sys_platform == 'darwin' and platform_machine == 'arm64'",
    "triton>=3.0.0; extra == 'triton'",
    "not a requirement ((",
]
INSTALLED = {"transformers": "5.23.0", "trl": "1.16.0", "torch": "2.13.0", "mlx": "0.1"}


def test_requirement_conflicts_name_each_excluded_installed_version() -> None:
    from cxr_harness_plugins.trainers.unsloth_backend import requirement_conflicts

    conflicts = requirement_conflicts(REQUIRES, INSTALLED.get)
    assert conflicts == [
        "transformers!=5.0.0,<=5.17.0,>=4.52.4 (installed 5.23.0)",
        "trl!=0.19.0,<=1.15.0,>=0.18.2 (installed 1.16.0)",
    ]  # torch satisfies its range; xformers/unsloth_zoo are absent; mlx's marker is darwin-only
    fitting = {**INSTALLED, "transformers": "5.17.0", "trl": "1.15.0"}
    assert requirement_conflicts(REQUIRES, fitting.get) == []


def _lora(backend: str):
    registry = make_registry()
    return registry.create("trainer", "rslora", {"backend": backend})


def test_backend_unsloth_with_a_conflicting_install_is_refused_naming_the_conflict() -> None:
    from cxr_harness_plugins.trainers.backends import choose_backend

    conflict = "unsloth 2026.10.9 declares it does not support this environment: trl<=1.15.0"
    asked = _lora("unsloth")
    with pytest.raises(BackendUnavailableError) as err:
        choose_backend(
            asked.options, asked.peft_extra, cuda=True, unsloth=True, unsloth_conflict=conflict
        )
    assert "trl<=1.15.0" in str(err.value) and "trainer.backend=hf" in str(err.value)
    auto = _lora("auto")
    pick = choose_backend(
        auto.options, auto.peft_extra, cuda=True, unsloth=True, unsloth_conflict=conflict
    )
    assert pick.backend == "hf" and "trl<=1.15.0" in pick.reason


def test_unsloth_conflict_reads_the_installed_distributions_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real (if minimal) installed distribution on sys.path, read through importlib.metadata."""
    import torch
    import transformers

    from cxr_harness_plugins.trainers.unsloth_backend import unsloth_conflict

    info = tmp_path / "unsloth-2026.10.9.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", "Name: unsloth", "Version: 2026.10.9"]
    lines += [f"Requires-Dist: {r}" for r in ("transformers<=5.17.0", "torch<2.15.0,>=2.4.0")]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    text = unsloth_conflict()
    assert text is not None and text.startswith("unsloth 2026.10.9 declares")
    assert f"transformers<=5.17.0 (installed {transformers.__version__})" in text
    assert "torch" not in text, torch.__version__  # the installed torch is in range
