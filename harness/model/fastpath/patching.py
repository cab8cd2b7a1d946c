"""Bind a replacement forward to chosen module instances (the class is left alone)."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from typing import Any

import torch


def patch_forwards(
    modules: Iterable[torch.nn.Module],
    wanted: Callable[[torch.nn.Module], bool],
    forward: Callable[..., Any],
    flag: str,
) -> int:
    """Bind `forward` to each module *instance* that `wanted` accepts and mark it with the
    attribute `flag`, so a second call skips it. Returns how many were patched by this call."""
    patched = 0
    for module in modules:
        if wanted(module) and not getattr(module, flag, False):
            setattr(module, flag, True)
            module.forward = types.MethodType(forward, module)
            patched += 1
    return patched


def count_flagged(model: torch.nn.Module, flag: str) -> int:
    """How many modules of `model` carry `flag` (were patched by `patch_forwards`)."""
    return sum(1 for m in model.modules() if getattr(m, flag, False))
