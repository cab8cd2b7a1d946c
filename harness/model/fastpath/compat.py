"""The one gate in front of the GPU fast paths: which may run here, which did, and why not.

The fast paths replace forwards inside transformers' Qwen2.5-VL modules and reuse its internals
(`apply_rotary_pos_emb_vision`, the attention and mask interfaces, the sdpa attention function,
the modules' attribute names). They were written and checked against the transformers minor
release the project pins, so they run only where the installed transformers is in `SUPPORTED`;
elsewhere every stock forward is kept and the record says why.

`apply_fast_paths(model)` (called by `harness.model.loading.load_base`) patches the vision tower's
three paths unless transformers is outside that range or ``CXR_HARNESS_VISION_ATTENTION=stock``,
and keeps a record on the model: `applied_fast_paths(model)` returns it, for provenance. The
decode attention is switched per generation (`harness.model.fastpath.decode_attention`) under the
same
gate (`skip_reason`, ``CXR_HARNESS_DECODE_ATTENTION=stock``). `fast_pixels` and `mrope` compute
inputs rather than patch the model; they are checked against transformers' own outputs by
``tests/test_fast_eval.py``.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

MIN_VERSION, BELOW_VERSION = (5, 23), (5, 24)
SUPPORTED = ">=5.23,<5.24"
VISION_ENV = "CXR_HARNESS_VISION_ATTENTION"
DECODE_ENV = "CXR_HARNESS_DECODE_ATTENTION"
VISION_PATHS = ("vision_attention", "patch_embed", "vision_mlp")
DECODE_PATH = "decode_attention"
SWITCHES = {**dict.fromkeys(VISION_PATHS, VISION_ENV), DECODE_PATH: DECODE_ENV}
RECORD_ATTR = "_harness_fast_paths"


def stock_requested(env: str) -> bool:
    """True under ``env=stock`` (case and surrounding spaces ignored)."""
    return os.environ.get(env, "").strip().lower() == "stock"


def transformers_version() -> str:
    import transformers

    return transformers.__version__


def version_problem(version: str | None = None) -> str | None:
    """Why the installed (or given) transformers cannot run the fast paths, or None."""
    version = version or transformers_version()
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    if MIN_VERSION <= parts < BELOW_VERSION:
        return None
    return (
        f"transformers {version} is outside {SUPPORTED}, the range the fast paths were written "
        "for; the stock forwards are kept"
    )


def skip_reason(path: str, version: str | None = None) -> str | None:
    """Why fast path `path` (one of `SWITCHES`) must not run now, or None when it may."""
    problem = version_problem(version)
    if problem:
        return problem
    env = SWITCHES[path]
    return f"{env}=stock" if stock_requested(env) else None


def text_config(model: Any) -> Any:
    """The language model's config (Qwen2.5-VL nests it as ``text_config``)."""
    config = model.config
    return getattr(config, "text_config", None) or config


def _vision_patchers() -> dict[str, tuple[Any, str, str]]:
    """Per vision path: (patch function, the flag it sets, why none qualified)."""
    from harness.model.fastpath import patch_embed, vision_attention, vision_mlp

    return {
        "vision_attention": (
            vision_attention.patch_vision_attention,
            vision_attention.FLAG,
            "no vision attention module runs sdpa or eager attention",
        ),
        "patch_embed": (
            patch_embed.patch_patch_embed,
            patch_embed.FLAG,
            "no Qwen2.5-VL patch embedding in the model",
        ),
        "vision_mlp": (
            vision_mlp.patch_vision_mlp,
            vision_mlp.FLAG,
            "no Qwen2.5-VL vision MLP in the model",
        ),
    }


def apply_fast_paths(model: Any) -> dict[str, Any]:
    """Patch the vision tower where allowed and record every path's state on `model`.

    Returns the record: the transformers version, `SUPPORTED`, and per path either
    ``{"applied": True, "modules": N}`` (vision paths; N modules carry the fast forward),
    ``{"applied": True, "when": ...}`` (decode attention, switched per generation) or
    ``{"applied": False, "reason": ...}``. Idempotent.
    """
    from harness.model.fastpath.patching import count_flagged

    version = transformers_version()
    paths: dict[str, dict[str, Any]] = {}
    for name, (patch, flag, none_reason) in _vision_patchers().items():
        reason = skip_reason(name, version)
        if reason is None:
            patch(model)
        modules = count_flagged(model, flag)  # also those an earlier call patched
        if modules:
            paths[name] = {"applied": True, "modules": modules}
        else:
            paths[name] = {"applied": False, "reason": reason or none_reason}
    reason = skip_reason(DECODE_PATH, version)
    impl = getattr(text_config(model), "_attn_implementation", None)
    if reason is None and impl != "sdpa":
        reason = f"the language model's attention is {impl!r}, not sdpa"
    paths[DECODE_PATH] = (
        {"applied": False, "reason": reason}
        if reason
        else {"applied": True, "when": "one-token decode steps of --decoding static|compiled"}
    )
    record = {"transformers": version, "supported": SUPPORTED, "paths": paths}
    setattr(model, RECORD_ATTR, record)
    return copy.deepcopy(record)


def applied_fast_paths(model: Any) -> dict[str, Any]:
    """The record `apply_fast_paths` kept on `model` (also found through a PEFT wrapper).

    A model the harness did not load through `harness.model.loading.load_base` has none: then the
    record says so, with no path applied.
    """
    modules = model.modules() if hasattr(model, "modules") else ()
    for candidate in (model, *modules):
        record = getattr(candidate, RECORD_ATTR, None)
        if isinstance(record, dict):
            return copy.deepcopy(record)
    reason = "fast paths were not applied to this model (it was not loaded by load_base)"
    return {
        "transformers": transformers_version(),
        "supported": SUPPORTED,
        "paths": {name: {"applied": False, "reason": reason} for name in SWITCHES},
    }
