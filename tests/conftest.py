"""Shared test setup: never touch the network, keep Rich output unwrapped and plain."""

from __future__ import annotations

import os

import pytest

# Set at import time too, so modules imported during collection already see it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


GPU_SKIP_REASON = "gpu marker: needs a CUDA GPU (the 3B architecture end to end); none here"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests, with the reason, where torch sees no CUDA GPU."""
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=GPU_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs offline, whatever an earlier test or the shell did."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("CXR_HARNESS_TRACE_HOOKS", raising=False)


@pytest.fixture
def cached_distributions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compute ``importlib.metadata.packages_distributions()`` once per session.

    ``make_registry()`` scans the installed distributions (~0.3 s) every time; they do not change
    inside one test process, so tests that build many registries share one result.
    """
    import importlib.metadata as md

    global _DISTRIBUTIONS
    if _DISTRIBUTIONS is None:
        _DISTRIBUTIONS = md.packages_distributions()
    monkeypatch.setattr(md, "packages_distributions", lambda: _DISTRIBUTIONS)


_DISTRIBUTIONS: dict[str, list[str]] | None = None
