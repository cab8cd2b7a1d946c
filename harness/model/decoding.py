"""Greedy generation with fixed shapes: a static KV cache, optionally with a compiled decode step.

A compiled decode step (CUDA graphs) is only fast if its shapes never change, or every new shape
costs a fresh compilation. So every batch here has the same number of rows (the last batch is
padded with copies of its last row, whose answers are dropped) and every prompt is left-padded to
a multiple of ``PAD_MULTIPLE`` tokens. Samples are bucketed by prompt length first, so padding
stays small when prompts vary, and answers are returned in the input order.

Decode steps run on `harness.model.fastpath.decode_attention` (grouped-query attention packed, also
when compiled). Padding is masked out, so greedy answers equal the plain path's (checked in fp32 on
the tiny model by ``tests/test_fast_eval.py``). As in the plain path, a batch stops as soon as
every row has emitted end-of-turn (the checkpoint's generation config names it as end-of-sequence).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness.core.errors import BackendUnavailableError

PAD_MULTIPLE = 64


def _pad_left(inputs: Any, multiple: int, pad_id: int) -> Any:
    import torch

    extra = -inputs["input_ids"].shape[1] % multiple
    if not extra:
        return inputs
    rows = inputs["input_ids"].shape[0]
    for key, value in (("input_ids", pad_id), ("attention_mask", 0), ("mm_token_type_ids", 0)):
        if key in inputs:
            t = inputs[key]
            pad = torch.full((rows, extra), value, dtype=t.dtype, device=t.device)
            inputs[key] = torch.cat([pad, t], dim=1)
    return inputs


class _StopAfter:
    """A stopping criterion: every row is done after `steps` new tokens (compile warm-up)."""

    def __init__(self, prompt_len: int, steps: int) -> None:
        self.limit = prompt_len + steps

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = input_ids.shape[1] >= self.limit
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def rows_per_batch(n: int, batch_size: int) -> int:
    """Rows of every batch for `n` prompts: as few batches as `batch_size` allows, shared evenly
    (rounded up to a multiple of 8, at most `batch_size`), so the padded last batch wastes little:
    160 prompts at batch 128 run as 2 × 80 rows, not 2 × 128."""
    batches = -(-n // batch_size)
    rows = -(-n // batches)
    return min(batch_size, -(-rows // 8) * 8)


def warm_up(model: Any, processor: Any, image: Any, prompt: str, config: Any, total: int) -> None:
    """Compile (or load from the compile cache) and capture the decode step for the shapes an
    evaluation of `total` prompts will use: one batch of `image`, stopped after
    `WARM_UP_STEPS` tokens; the answers are dropped."""
    generate_static(
        model, processor, [image], [prompt], config, stop_after=WARM_UP_STEPS, total=total
    )


WARM_UP_STEPS = 4


def generate_static(
    model: Any,
    processor: Any,
    images: Sequence[Any],
    prompts: Sequence[str],
    config: Any,
    on_batch: Callable[[int], None] | None = None,
    stop_after: int | None = None,
    total: int | None = None,
) -> list[str]:
    """Greedy answers in input order; see the module docstring. `config` is a GenerationConfig;
    batches hold `rows_per_batch(total, batch size)` rows (`total`: the number of prompts unless
    given); `stop_after` ends every batch after that many new tokens (the warm-up)."""
    import torch
    from transformers import CompileConfig, StoppingCriteriaList

    from harness.model.batching import prefetched
    from harness.model.fastpath.decode_attention import decode_attention
    from harness.model.fastpath.fast_pixels import encode_prompts_fast
    from harness.model.gpu_eval import configure_compile_cache
    from harness.model.sft import render_prompt

    device = next(model.parameters()).device
    compiled = config.decoding == "compiled"
    if compiled and device.type != "cuda":
        raise BackendUnavailableError("--decoding compiled needs a CUDA GPU; use static or plain")
    tokenizer = getattr(processor, "tokenizer", processor)
    lengths = {p: len(tokenizer(render_prompt(processor, p, True))["input_ids"]) for p in prompts}
    order = sorted(range(len(prompts)), key=lambda i: lengths[prompts[i]])
    size = rows_per_batch(total or len(prompts), config.batch_size)
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    extra: dict[str, Any] = {"cache_implementation": "static", "disable_compile": not compiled}
    if compiled:
        configure_compile_cache()
        extra["compile_config"] = CompileConfig(fullgraph=False, dynamic=False)

    def encode(rows: list[int]) -> Any:
        rows = rows + [rows[-1]] * (size - len(rows))  # same shape for every batch
        imgs, texts = [images[i] for i in rows], [prompts[i] for i in rows]
        batch = encode_prompts_fast(processor, imgs, texts, device)
        return _pad_left(batch, PAD_MULTIPLE, tokenizer.pad_token_id)

    answers: dict[int, str] = {}
    with decode_attention(model):  # GQA packed in decode steps, also when compiled
        for rows, inputs in prefetched(batches, encode):  # next batches encode during this one
            stop = {}
            if stop_after is not None:
                prompt_len = inputs["input_ids"].shape[1]
                stop["stopping_criteria"] = StoppingCriteriaList(
                    [_StopAfter(prompt_len, stop_after)]
                )
            with torch.inference_mode():
                out = model.generate(
                    **inputs,
                    max_new_tokens=config.max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    **extra,
                    **stop,
                )
            texts = tokenizer.batch_decode(
                out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
            )
            answers.update(zip(rows, texts, strict=False))
            if on_batch is not None:
                on_batch(len(rows))
    return [answers[i] for i in range(len(prompts))]
