"""Evaluation defaults that depend on the machine, and the compiled decoder's reuse across models.

* `resolve_decoding`: ``auto`` (the default) is ``compiled`` where a CUDA GPU is available and
  ``plain`` elsewhere (on a CPU the plain path is the fastest exact one: a static cache without
  compilation is slower), so CPU runs keep their settings, cache keys and results.
* `auto_eval_batch`: with no ``--eval-batch-size`` on a CUDA GPU, the batch is sized from the
  GPU's free memory (minus the weights) and the model's KV-cache size per row, capped at
  `MAX_AUTO_BATCH`; elsewhere the preset's batch is kept.
* `configure_compile_cache`: inductor's and Triton's caches go under the harness's cache folder
  (``$XDG_CACHE_HOME/cxr-harness/compile``, or ``CXR_HARNESS_COMPILE_CACHE``) unless the user set
  ``TORCHINDUCTOR_CACHE_DIR``/``TRITON_CACHE_DIR``, so a second process pays almost no compile.
* `merged_for_eval`: a LoRA/rsLoRA/DoRA model is evaluated with its adapter merged into the base
  weights in place and each LoRA wrapper swapped for its base layer, so the language model has the
  plain model's module tree and weights layout: the compiled decoder it traces is the base's
  (same graph, a compile-cache hit) and no decode step runs the adapter's extra matmuls. On exit
  the original weights (kept as copies) and wrappers are restored exactly. A 4-bit base is never
  merged (re-quantizing would change the weights).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.core.cache_dir import harness_cache_dir

DECODING_CHOICES = ("auto", "plain", "static", "compiled")
MAX_AUTO_BATCH = 128
BATCH_MULTIPLE = 8
MEMORY_SHARE = 0.5  # of the memory left after the weights; the rest is headroom
ACTIVATION_FACTOR = 4  # prefill activations and the vision tower, per KV-cache byte (measured)
PROMPT_TOKENS = 512  # an upper bound of the padded prompt with one image at the preset size
COMPILE_CACHE_ENV = "CXR_HARNESS_COMPILE_CACHE"


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_decoding(decoding: str) -> str:
    """``auto`` → ``compiled`` on a CUDA GPU, else ``plain``; any other mode is kept."""
    if decoding != "auto":
        return decoding
    return "compiled" if cuda_available() else "plain"


def kv_bytes_per_token(config: dict[str, Any], dtype_bytes: int = 2) -> int:
    """Bytes of KV cache per token and batch row, from a Qwen2.5-VL ``config.json``."""
    text = config.get("text_config") or config
    layers = int(text["num_hidden_layers"])
    heads = int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or int(text["hidden_size"]) // heads)
    return 2 * layers * kv_heads * head_dim * dtype_bytes


def batch_for_memory(free_bytes: int, weight_bytes: int, per_row: int) -> int:
    """The largest multiple of `BATCH_MULTIPLE` (≥ it, ≤ `MAX_AUTO_BATCH`) whose rows fit in
    `MEMORY_SHARE` of what the weights leave free."""
    room = max(0, free_bytes - weight_bytes) * MEMORY_SHARE
    rows = int(room // max(per_row, 1)) // BATCH_MULTIPLE * BATCH_MULTIPLE
    return max(BATCH_MULTIPLE, min(MAX_AUTO_BATCH, rows))


def auto_eval_batch(model_dir: str | None, max_new_tokens: int) -> int | None:
    """A batch size from the GPU's free memory for a local checkpoint, or None (no CUDA GPU,
    or no local ``config.json`` to size the KV cache from): then the preset's batch applies."""
    import json

    if model_dir is None or not cuda_available():
        return None
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        return None
    import torch

    config = json.loads((path / "config.json").read_text())
    weights = sum(f.stat().st_size for f in path.glob("*.safetensors"))
    per_row = ACTIVATION_FACTOR * kv_bytes_per_token(config) * (PROMPT_TOKENS + max_new_tokens)
    free, _total = torch.cuda.mem_get_info()
    return batch_for_memory(free, weights, per_row)


def compile_cache_dir() -> Path:
    given = os.environ.get(COMPILE_CACHE_ENV)
    if given:
        return Path(given).expanduser()
    return harness_cache_dir() / "compile"


def configure_compile_cache() -> dict[str, str]:
    """Point inductor's and Triton's on-disk caches into `compile_cache_dir` (where the user has
    not chosen their own) and turn on the FX-graph and AOT-autograd caches. Returns the dirs."""
    root = compile_cache_dir()
    dirs = {
        "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),
        "TRITON_CACHE_DIR": str(root / "triton"),
    }
    for env, path in dirs.items():
        os.environ.setdefault(env, path)
        Path(os.environ[env]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    return {env: os.environ[env] for env in dirs}


def _lora_layers(model: Any) -> list[tuple[Any, str, Any]]:
    """(parent, attribute, LoRA wrapper) for every LoRA layer wrapping a plain base layer."""
    from peft.tuners.lora import LoraLayer

    found = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, LoraLayer) and hasattr(child, "base_layer"):
                found.append((parent, name, child))
    return found


def is_quantized(model: Any) -> bool:
    """A bitsandbytes base (the attribute is found through a PEFT wrapper too)."""
    return bool(getattr(model, "is_loaded_in_4bit", False)) or bool(
        getattr(model, "is_loaded_in_8bit", False)
    )


def mergeable(model: Any) -> bool:
    """A PEFT LoRA-family model on a full-precision base, with nothing merged yet."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    if not isinstance(model, PeftModel) or is_quantized(model):
        return False
    layers = _lora_layers(model)
    return bool(layers) and not any(getattr(w, "merged", False) for _p, _n, w in layers)


@contextmanager
def merged_for_eval(model: Any) -> Iterator[bool]:
    """Evaluate with the adapter merged in place (see the module docstring); yields whether it
    merged. Weights and wrappers are restored exactly on exit, also after an error."""
    import torch

    if not mergeable(model):
        yield False
        return
    layers = _lora_layers(model)
    kept: list[tuple[Any, str, Any, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for parent, name, wrapper in layers:
                base = wrapper.get_base_layer()
                kept.append((parent, name, wrapper, base.weight.data.clone()))
                wrapper.merge(safe_merge=False)
                setattr(parent, name, base)
        yield True
    finally:
        with torch.no_grad():
            for parent, name, wrapper, weight in kept:
                setattr(parent, name, wrapper)
                wrapper.get_base_layer().weight.data.copy_(weight)
                wrapper.merged_adapters.clear()


@contextmanager
def evaluation_model(model: Any, gen: Any) -> Iterator[bool]:
    """The model as one evaluation runs it: under compiled decoding, a LoRA-family adapter is
    merged (`merged_for_eval`); elsewhere it is left as it is. Yields whether it merged."""
    if getattr(gen, "decoding", None) != "compiled" or getattr(gen, "scoring", None) != "generate":
        yield False
        return
    with merged_for_eval(model) as merged:
        yield merged


def eval_fast_paths(model: Any, merged: bool) -> dict[str, Any]:
    """The fast-path record of the evaluated model (`harness.model.fastpath.applied_fast_paths`)
    plus whether its adapter was merged for the evaluation, for each result's provenance."""
    from harness.model.fastpath import applied_fast_paths

    record = applied_fast_paths(model)
    if merged:
        state: dict[str, Any] = {"applied": True, "when": "compiled decoding of a LoRA adapter"}
    else:
        state = {"applied": False, "reason": "only under compiled decoding of a LoRA adapter"}
    record["paths"]["merged_adapter"] = state
    return record
