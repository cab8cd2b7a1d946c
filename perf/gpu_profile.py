"""Where the time goes: torch profiler traces of one prefill and one training step.

    python perf/gpu_profile.py --part prefill --batch 64          # on the device
    python perf/gpu_profile.py --part decode --batch 64            # compiled static-cache decode
    python perf/gpu_profile.py --part train --train-batch 8
    python perf/gpu_profile.py --arch tiny --part all --batch 4   # CPU smoke run

``prefill`` times, on one batch of the harness's own likelihood inputs: the patch embedding as
stock Conv3d vs the harness's matrix product, the vision tower alone, the mRoPE index, one whole
prefill, the single-pass likelihood forward, then profiles one prefill and prints the top device
kernels, the top host ops, the host syncs and how busy the device was. ``decode`` profiles one
whole compiled generation (``--new-tokens``, after a compiling warm-up; set
``CXR_HARNESS_DECODE_ATTENTION=stock`` for transformers' decode attention). ``train`` profiles one
steady seed-like rsLoRA step (the third) through the trainer plugin. Not a test: it prints tables.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from gpu_bench import SEED_LIKE, card, perf_model, samples, sync, timed, train_case


def _summary(prof, rows: int = 15) -> dict:
    import torch
    from torch.autograd import DeviceType

    cuda = torch.cuda.is_available()
    ev = prof.key_averages()
    dev_key = "self_device_time_total" if cuda else "self_cpu_time_total"
    # kernel events only (op rows repeat their kernels' time), as the table's "Self CUDA" total
    kernels = [e for e in ev if e.device_type == DeviceType.CUDA and not e.is_user_annotation]
    busy = sum(e.self_device_time_total for e in kernels) / 1e6 if cuda else None
    syncs = sum(e.count for e in ev if e.key in ("aten::item", "aten::_local_scalar_dense"))
    return {
        "device_busy_s": busy,
        "host_syncs": syncs,
        "sdpa_calls": sum(e.count for e in ev if "scaled_dot_product" in e.key),
        "kernels": ev.table(sort_by=dev_key, row_limit=rows, max_name_column_width=60),
        "host": ev.table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=60),
    }


def prefill_part(spec: dict, size: int, batch: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from harness.data.labels import PHANTOM8_CLASSES
    from harness.evaluation.likelihood import _score_batch, label_continuations
    from harness.model.fastpath.fast_pixels import encode_prompts_fast
    from harness.model.loading import ModelSpec, load_base
    from harness.model.prompts import eval_prompt
    from harness.model.sft import render_prompt

    model, processor = load_base(ModelSpec(**spec))
    device = next(model.parameters()).device
    data = samples(batch, size)
    prompt = eval_prompt(PHANTOM8_CLASSES)
    inputs = encode_prompts_fast(processor, [s.image for s in data], [prompt] * batch, device)
    core, visual = model.model, model.model.visual
    embed = visual.patch_embed
    row: dict = {"batch": batch, "prompt_tokens": int(inputs["input_ids"].shape[1])}
    row["encode_s"] = timed(
        lambda: encode_prompts_fast(processor, [s.image for s in data], [prompt] * batch, device)
    )
    with torch.inference_mode():
        pv = inputs["pixel_values"]
        row["patch_embed_conv3d_s"] = timed(lambda: type(embed).forward(embed, pv), 5)
        row["patch_embed_linear_s"] = timed(lambda: embed(pv), 5)
        row["vision_s"] = timed(lambda: visual(pv, grid_thw=inputs["image_grid_thw"]))
        row["rope_index_s"] = timed(
            lambda: core.get_rope_index(
                inputs["input_ids"],
                mm_token_type_ids=inputs["mm_token_type_ids"],
                image_grid_thw=inputs["image_grid_thw"],
                attention_mask=inputs["attention_mask"],
            )
        )
        row["prefill_s"] = timed(lambda: model(**inputs, use_cache=True, logits_to_keep=1))
        shared, rest = label_continuations(
            processor.tokenizer, PHANTOM8_CLASSES, render_prompt(processor, prompt, True)
        )
        row["label_tokens"] = [len(r) for r in rest]
        scored = encode_prompts_fast(
            processor, [s.image for s in data], [prompt] * batch, device, with_positions=True
        )
        row["likelihood_forward_s"] = timed(lambda: _score_batch(model, scored, shared, rest))
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        sync()
        t0 = time.perf_counter()
        with profile(activities=acts) as prof:
            model(**inputs, use_cache=True, logits_to_keep=1)
            sync()
        row["profiled_prefill_wall_s"] = time.perf_counter() - t0
    row.update(_summary(prof))
    return row


def decode_part(spec: dict, size: int, batch: int, new_tokens: int) -> dict:
    """Profile one compiled static-cache generation (after a warm-up that compiles it)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from harness.data.labels import PHANTOM8_CLASSES
    from harness.evaluation.generate import GenerationConfig, generate_answers
    from harness.model.fastpath import applied_fast_paths
    from harness.model.fastpath.decode_attention import NAME
    from harness.model.loading import ModelSpec, load_base
    from harness.model.prompts import eval_prompt

    model, processor = load_base(ModelSpec(**spec))
    cuda = torch.cuda.is_available()
    data = samples(batch, size)
    images, prompts = [s.image for s in data], [eval_prompt(PHANTOM8_CLASSES)] * batch
    cfg = GenerationConfig(new_tokens, batch, decoding="compiled" if cuda else "static")
    row: dict = {"batch": batch, "new_tokens": new_tokens, "decoding": cfg.decoding}
    impl = model.config.text_config._attn_implementation
    packed = applied_fast_paths(model)["paths"]["decode_attention"]["applied"]
    row["decode_attention"] = NAME if packed else "stock"
    row["attn_implementation"] = impl
    t0 = time.perf_counter()
    generate_answers(model, processor, images, prompts, cfg)  # compiles
    sync()
    row["warmup_s"] = time.perf_counter() - t0
    row["generate_s"] = timed(lambda: generate_answers(model, processor, images, prompts, cfg), 1)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        generate_answers(model, processor, images, prompts, cfg)
        sync()
    row.update(_summary(prof, rows=20))
    return row


def train_part(spec: dict, size: int, batch: int, workdir: Path) -> dict:
    """Profile the third step (steps 1-2 warm up) of a seed-like rsLoRA run."""
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    from harness.model.loading import ModelSpec

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    opts = {**SEED_LIKE, "max_steps": 4, "batch_size": batch, "gradient_checkpointing": True}
    prof = profile(activities=acts, schedule=schedule(wait=1, warmup=1, active=1, repeat=1))
    prof.start()
    row = train_case(
        ModelSpec(**spec), "rslora", opts, samples(batch * 4, size), workdir, on_step=prof.step
    )
    prof.stop()
    row.pop("losses", None)
    row.update(_summary(prof))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", choices=["3b", "tiny"], default="3b")
    ap.add_argument("--part", choices=["prefill", "decode", "train", "all"], default="all")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=96, help="decode part: tokens generated")
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    work = Path(os.environ.get("GPU_SPEED_WORK") or tempfile.mkdtemp(prefix="gpu-prof-"))
    spec, size = perf_model(args.arch, work)
    rows = {}
    if args.part in ("prefill", "all"):
        rows["prefill"] = prefill_part(spec, size, args.batch)
    if args.part in ("decode", "all"):
        rows["decode"] = decode_part(spec, size, args.batch, args.new_tokens)
    if args.part in ("train", "all"):
        rows["train"] = train_part(spec, size, args.train_batch, work / "train")
    for name, row in rows.items():
        print(f"== {name} ({args.arch}, {card()}) ==")
        for key, value in row.items():
            if key not in ("kernels", "host"):
                print(f"{key}: {value}")
        print(row["kernels"])
        print(row["host"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"card": card(), "rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
