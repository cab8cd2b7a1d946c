"""Baseline vs improved GPU paths in one run: evaluation, likelihood scoring, training, MFU.

    python perf/gpu_speed.py --part eval  --out perf/results/gpu_speed_eval.json   # on the device
    python perf/gpu_speed.py --part train --out perf/results/gpu_speed_train.json
    python perf/gpu_speed.py --arch tiny --part all --images 8 --steps 3            # CPU smoke run

Every case runs in a fresh process (its own peak memory) through the harness's own code paths.
"Baseline" is the stock transformers vision tower (``CXR_HARNESS_VISION_ATTENTION=stock``:
per-window attention, Conv3d patch embedding, unpadded MLP) with plain HF ``generate`` and the
CPU image processor; "fast vision" is the harness's vision paths (`harness.model.fastpath`), and the
static, compiled and likelihood paths make pixels on the device (``fast_pixels``). The static
and compiled decoders pack grouped-query attention (`decode_attention`); "stock GQA" turns that
off. Training MFU counts 2·F_lin + 3·F_attn per sample (frozen weights: forward + input
gradient; attention: forward + 2× backward; causal language attention counted as half), against
989 TFLOP/s bf16 dense for H100/H200. Decode ms/step is (one batch with all new tokens − the same
batch with one new token, i.e. no decode step) / (new tokens − 1), on the same path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpu_bench import SEED_LIKE, card, perf_model, samples, sync, timed, train_case
from rich.console import Console
from rich.table import Table

PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4}


def linear_params(model) -> dict[str, int]:
    """Weights applied per token: vision blocks + patch embedding, merger, language, lm_head."""
    import torch

    out = {"vision": 0, "merger": 0, "language": 0, "head": 0}
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv3d)) and "lora" not in name:
            n = mod.weight.numel()
            key = (
                "merger"
                if ".merger." in name
                else "vision"
                if ".visual." in name or name.startswith("visual")
                else "head"
                if name.endswith("lm_head")
                else "language"
            )
            out[key] += n
    return out


def flops_per_sample(config, params: dict[str, int], patches: int, text_tokens: float) -> dict:
    """Forward F_lin and F_attn of one sample (448 px: 1024 patches, 256 image tokens)."""
    v, t = config.vision_config, config.text_config
    merged = patches // v.spatial_merge_size**2
    window = (v.window_size // v.patch_size) ** 2
    f_lin = 2 * (
        params["vision"] * patches
        + params["merger"] * merged
        + (params["language"] + params["head"]) * text_tokens
    )
    full = len(v.fullatt_block_indexes)
    d_v = v.hidden_size
    f_attn = 4 * d_v * ((v.depth - full) * patches * min(window, patches) + full * patches**2)
    d_t = t.num_attention_heads * (t.hidden_size // t.num_attention_heads)
    f_attn += t.num_hidden_layers * 4 * d_t * text_tokens**2 / 2
    return {"f_lin": f_lin, "f_attn": f_attn}


def eval_case(case: dict) -> dict:
    import torch

    from harness.data.labels import PHANTOM8_CLASSES
    from harness.evaluation.generate import GenerationConfig, evaluate
    from harness.model.fastpath import applied_fast_paths
    from harness.model.fastpath.fast_pixels import encode_prompts_fast
    from harness.model.loading import ModelSpec, load_base
    from harness.model.prompts import eval_prompt
    from harness.model.sft import encode_prompts

    model, processor = load_base(ModelSpec(**case["spec"]))
    data = samples(case["images"], case["size"])
    batch, prompt = case["batch"], eval_prompt(PHANTOM8_CLASSES)
    cfg = GenerationConfig(
        case["new_tokens"], batch, scoring=case["scoring"], decoding=case["decoding"]
    )
    t0 = time.perf_counter()
    evaluate(model, processor, data[:batch], prompt, PHANTOM8_CLASSES, cfg)  # warm-up / compile
    sync()
    warm = time.perf_counter() - t0
    torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
    t0 = time.perf_counter()
    evaluate(model, processor, data, prompt, PHANTOM8_CLASSES, cfg)
    sync()
    secs = time.perf_counter() - t0
    row = {"images_per_s": len(data) / secs, "warmup_s": warm, "seconds": secs}
    paths = applied_fast_paths(model)["paths"]
    row["fast_paths"] = sorted(name for name, state in paths.items() if state["applied"])
    # the parts of one batch: preprocessing (the path this case uses), prefill (one forward)
    device = next(model.parameters()).device
    images = [s.image for s in data[:batch]]
    fast = case["scoring"] == "likelihood" or case["decoding"] != "plain"
    t0 = time.perf_counter()
    if fast:  # pixels made on the device (harness.model.fastpath.fast_pixels)
        inputs = encode_prompts_fast(processor, images, [prompt] * batch, device)
    else:  # the PIL image processor on the CPU
        inputs = encode_prompts(processor, images, [prompt] * batch).to(device)
    sync()
    row["preprocess_s_per_batch"] = time.perf_counter() - t0
    with torch.inference_mode():
        model(**inputs, logits_to_keep=1)
        sync()
        t0 = time.perf_counter()
        model(**inputs, logits_to_keep=1)
        sync()
    row["prefill_s_per_batch"] = time.perf_counter() - t0
    if case["scoring"] == "generate":  # one batch with all new tokens vs with the first only
        one = GenerationConfig(1, batch, scoring="generate", decoding=case["decoding"])
        evaluate(model, processor, data[:batch], prompt, PHANTOM8_CLASSES, one)  # no decode step
        first = timed(
            lambda: evaluate(model, processor, data[:batch], prompt, PHANTOM8_CLASSES, one),
            reps=1,
            warmup=False,
        )
        whole = timed(
            lambda: evaluate(model, processor, data[:batch], prompt, PHANTOM8_CLASSES, cfg),
            reps=1,
            warmup=False,
        )
        row["decode_ms_per_step"] = 1000 * (whole - first) / (case["new_tokens"] - 1)
    row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0
    return row


def train_run(case: dict) -> dict:
    import torch
    from transformers import AutoConfig

    from harness.model.loading import ModelSpec, resolve_model_path
    from harness.model.sft import collate_sft

    spec = ModelSpec(**case["spec"])
    data = samples(case["n"], case["size"])
    row = train_case(spec, case["trainer"], case["opts"], data, Path(case["workdir"]))
    config = AutoConfig.from_pretrained(resolve_model_path(spec))
    with torch.device("meta"):
        from transformers import Qwen2_5_VLForConditionalGeneration

        params = linear_params(Qwen2_5_VLForConditionalGeneration(config))
    from harness.model.processing import load_processor

    lo, hi = spec.pixels
    proc = load_processor(resolve_model_path(spec), None, lo, hi)
    batch = collate_sft(proc, [(s.image, s.prompt, s.report) for s in data[:8]])
    text = float(batch["attention_mask"].sum(1).float().mean())
    patches = int(batch["image_grid_thw"][0].prod())
    f = flops_per_sample(config, params, patches, text)
    row["tflop_per_sample"] = (2 * f["f_lin"] + 3 * f["f_attn"]) / 1e12
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in card()), None)
    row["mfu"] = row["samples_per_s"] * row["tflop_per_sample"] / peak if peak else None
    return row


def run_case(case: dict) -> dict:
    os.environ["CXR_HARNESS_VISION_ATTENTION"] = case["vision"]
    if case.get("decoding") == "compiled-stock":  # transformers' decode attention (repeat_kv)
        os.environ["CXR_HARNESS_DECODE_ATTENTION"] = "stock"
        case["decoding"] = "compiled"
    if case["kind"] == "eval":
        return eval_case(case)
    return train_run(case)


def _child(job: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--case", json.dumps(job)], capture_output=True, text=True
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("CASE-RESULT ")), None)
    if line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:] or ["no output"]
        return {**job, "error": " | ".join(tail)[:400]}
    return {**job, **json.loads(line.removeprefix("CASE-RESULT "))}


def _fmt(v, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", choices=["3b", "tiny"], default="3b")
    ap.add_argument("--part", choices=["eval", "train", "all"], default="all")
    ap.add_argument("--batch", type=int, default=64, help="evaluation batch size")
    ap.add_argument("--likelihood-batch", type=int, default=0, help="last mode's batch size")
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=96)
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--modes", default="", help="only these eval modes (comma list of indexes)")
    ap.add_argument(
        "--ckpt-batches", default="", help="only batched-vision grad-ckpt cases, e.g. 12,16"
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print("CASE-RESULT " + json.dumps(run_case(json.loads(args.case)), default=str))
        return
    import torch

    console = Console(width=160)
    work = Path(os.environ.get("GPU_SPEED_WORK") or tempfile.mkdtemp(prefix="gpu-speed-"))
    spec, size = perf_model(args.arch, work)
    dev = card()
    rows: list[dict] = []
    if args.part in ("eval", "all"):
        lb = args.likelihood_batch or args.batch
        modes = [
            ("baseline: stock vision, plain generate", "stock", "generate", "plain", args.batch),
            ("fast vision, plain generate", "batched", "generate", "plain", args.batch),
            ("fast vision, static cache", "batched", "generate", "static", args.batch),
            ("fast vision, compiled decode", "batched", "generate", "compiled", args.batch),
            ("baseline: stock vision, likelihood", "stock", "likelihood", "plain", args.batch),
            ("fast vision, likelihood", "batched", "likelihood", "plain", args.batch),
            (f"fast vision, likelihood, batch {lb}", "batched", "likelihood", "plain", lb),
            (
                "fast vision, compiled, stock GQA",
                "batched",
                "generate",
                "compiled-stock",
                args.batch,
            ),
        ]
        if args.modes:
            keep = set(args.modes.split(","))
            modes = [m for i, m in enumerate(modes) if str(i) in keep]
        if args.arch == "tiny" or not torch.cuda.is_available():
            modes = [m for m in modes if not m[3].startswith("compiled")]
        et = Table(
            title=f"evaluation, {args.images} images, "
            f"{args.new_tokens} new tokens ({args.arch}, {dev})"
        )
        for col in (
            "case",
            "batch",
            "images/s",
            "× baseline",
            "decode ms/step",
            "prefill s/batch",
            "preproc s/batch",
            "warm-up s",
            "peak GiB",
        ):
            et.add_column(col)
        base = {}
        for name, vision, scoring, decoding, batch in modes:
            r = _child(
                {
                    "kind": "eval",
                    "name": name,
                    "vision": vision,
                    "scoring": scoring,
                    "decoding": decoding,
                    "batch": batch,
                    "images": args.images,
                    "new_tokens": args.new_tokens,
                    "spec": spec,
                    "size": size,
                }
            )
            rows.append(r)
            print("ROW", json.dumps({k: v for k, v in r.items() if k != "spec"}), flush=True)
            if "error" in r:
                et.add_row(name, str(batch), "error", r["error"][-90:], *[""] * 5)
                continue
            base.setdefault(scoring, r["images_per_s"]) if vision == "stock" else None
            ref = base.get(scoring) if scoring == "likelihood" else base.get("generate")
            et.add_row(
                name,
                str(batch),
                f"{r['images_per_s']:.2f}",
                _fmt(r["images_per_s"] / ref if ref else None),
                _fmt(r.get("decode_ms_per_step"), ".1f"),
                f"{r['prefill_s_per_batch']:.3f}",
                f"{r['preprocess_s_per_batch']:.3f}",
                f"{r['warmup_s']:.1f}",
                f"{r['peak_gib']:.1f}",
            )
        console.print(et)
    if args.part in ("train", "all"):
        opts = {
            **SEED_LIKE,
            "lr": 1e-4,
            "max_steps": args.steps,
            "batch_size": args.train_batch,
            "seed": 0,
        }
        cases = [
            (
                "baseline: stock vision, grad ckpt",
                "stock",
                "rslora",
                {**opts, "gradient_checkpointing": True},
            ),
            (
                "batched vision, grad ckpt",
                "batched",
                "rslora",
                {**opts, "gradient_checkpointing": True},
            ),
            ("batched vision, no ckpt", "batched", "rslora", {**opts, "max_steps": 12}),
        ]
        if args.ckpt_batches:
            cases = [
                (
                    f"batched vision, grad ckpt, batch {b}",
                    "batched",
                    "rslora",
                    {**opts, "batch_size": b, "max_steps": 12, "gradient_checkpointing": True},
                )
                for b in map(int, args.ckpt_batches.split(","))
            ]
        elif torch.cuda.is_available():
            cases.append(
                (
                    "QLoRA batch 2, batched vision",
                    "batched",
                    "qlora",
                    {**opts, "batch_size": 2, "max_steps": 12, "gradient_checkpointing": True},
                )
            )
        tt = Table(title=f"training, seed-like rsLoRA ({args.arch}, {dev})")
        for col in ("case", "batch", "samples/s", "× baseline", "peak GiB", "TFLOP/sample", "MFU"):
            tt.add_column(col)
        ref = None
        for i, (name, vision, trainer, o) in enumerate(cases):
            r = _child(
                {
                    "kind": "train",
                    "name": name,
                    "vision": vision,
                    "trainer": trainer,
                    "opts": o,
                    "spec": spec,
                    "size": size,
                    "n": max(64, o["batch_size"] * 4),
                    "workdir": str(work / f"train-{i}"),
                }
            )
            rows.append(r)
            if "error" in r:
                tt.add_row(name, "", "error", r["error"][-90:], "", "", "")
                continue
            ref = ref or r["samples_per_s"]
            tt.add_row(
                name,
                str(r["batch"]),
                f"{r['samples_per_s']:.2f}",
                f"{r['samples_per_s'] / ref:.2f}",
                f"{r['peak_gib']:.2f}",
                f"{r['tflop_per_sample']:.2f}",
                _fmt(r["mfu"], ".1%"),
            )
        console.print(tt)
        a, b = (next((r for r in rows if r.get("name") == n), {}) for n, *_ in cases[:2])
        if a.get("losses") and b.get("losses"):
            diffs = [abs(x[1] - y[1]) for x, y in zip(a["losses"], b["losses"], strict=False)]
            console.print(
                f"loss curve over {args.steps} steps, baseline vs batched vision (logged every "
                f"{a['losses'][0][0]} steps): max |Δloss| {max(diffs):.4f}, first "
                f"{a['losses'][0][1]:.4f} vs {b['losses'][0][1]:.4f}, last "
                f"{a['losses'][-1][1]:.4f} vs {b['losses'][-1][1]:.4f}"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {"card": dev, "arch": args.arch, "torch": torch.__version__, "rows": rows},
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
