"""One compiled decoder for a whole grid: every LoRA-family adapter is evaluated on the base model
the grid's ``base`` row was evaluated with, its weights merged into that model in place.

Under compiled decoding, torch.compile and CUDA-graph capture are tied to one model object: an
adapter evaluated on its own training copy pays a second warm-up (17 s cold, 10.5 s with a warm
cache, on an H200 with the 3B architecture). Here the saved adapter is attached to the kept base
(`harness.model.adapters.attach_adapter`, the path ``harness eval --adapter`` takes), merged
(`merged_for_eval`: the module tree and weight storage are the plain base's again, so the graphs
it captured replay with the merged weights), evaluated, then taken off: the base's weights come
back bit for bit, and its module tree and ``requires_grad`` flags as they were.

Only a full-precision base and an adapter without ``modules_to_save`` (trainable embeddings)
are shared; anything else is evaluated on its own model as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import ExecutionError
from harness.model.adapters import attach_adapter, base_load_of, read_card
from harness.model.gpu_eval import is_quantized, merged_for_eval


def _shareable_adapter(adapter_dir: Path | None) -> bool:
    if adapter_dir is None or not (adapter_dir / "adapter_config.json").is_file():
        return False
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    if config.get("modules_to_save") or config.get("peft_type") != "LORA":
        return False
    return not base_load_of(read_card(adapter_dir)).load_in_4bit


@dataclass
class SharedBase:
    """The base model kept for the rest of a run (one per process), keyed by its weights hash."""

    model: Any = None
    key: str = ""

    def keep(self, model: Any, key: str) -> None:
        """Keep a plain (not PEFT-wrapped, not quantized) base model after its evaluation."""
        from peft import PeftModel

        if self.model is None and not isinstance(model, PeftModel) and not is_quantized(model):
            self.model, self.key = model, key

    def serves(self, adapter_dir: Path | None, key: str) -> bool:
        return self.model is not None and key == self.key and _shareable_adapter(adapter_dir)

    @contextmanager
    def with_adapter(self, adapter_dir: Path) -> Iterator[Any]:
        """The kept base with ``adapter_dir`` attached and merged; restored exactly on exit."""
        import torch

        base = self.model
        flags = [(p, p.requires_grad) for p in base.parameters()]
        weights = {id(p): p for p, _ in flags}
        adapter_dtype = base_load_of(read_card(adapter_dir)).adapter_dtype
        peft = attach_adapter(base, adapter_dir, adapter_dtype)
        try:
            for param, flag in flags:  # PEFT freezes the base: compiled guards see the old flags
                param.requires_grad_(flag)
            with merged_for_eval(peft) as merged:
                if not merged:
                    raise ExecutionError(f"the adapter in {adapter_dir} did not merge")
                yield peft
        finally:
            with torch.no_grad():
                peft.unload()
            if hasattr(base, "peft_config"):
                del base.peft_config
            for param, flag in flags:
                param.requires_grad_(flag)
            base.eval()
            left = [n for n, p in base.named_parameters() if id(p) not in weights]
            if left:
                raise ExecutionError(
                    f"taking the adapter off the kept base left parameters behind: {left[:3]}"
                )
