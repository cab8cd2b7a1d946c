"""Training and evaluation speed/memory of the harness's own code paths on the GPU.

    python perf/gpu_bench.py --arch 3b --out perf/results/gpu.json      # on the device
    python perf/gpu_bench.py --arch tiny --steps 2                        # CPU smoke run

Measures, with the trainer plugins and the evaluation runner exactly as `harness bench` uses
them: seed-like rsLoRA (r=16, alpha=16, dropout 0.15, vision + language attention) at several
batch sizes, the same under 4-bit QLoRA, and batched greedy evaluation at several batch sizes.
Prints a table; every figure names the card it ran on.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table


def samples(n: int, size: int, seed: int = 0) -> list:
    from harness.data import Sample
    from harness.labels import PHANTOM8_CLASSES
    from harness.phantoms import render_phantom
    from harness.prompts import eval_prompt

    prompt = eval_prompt(PHANTOM8_CLASSES)
    out = []
    for i in range(n):
        label = PHANTOM8_CLASSES[i % len(PHANTOM8_CLASSES)]
        p = render_phantom(label, seed * 100_000 + i, size)
        out.append(
            Sample(id=f"perf-{i}", label=label, image=p.image, report=p.report, prompt=prompt)
        )
    return out


def card() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def train_case(spec, trainer_name: str, opts: dict, data: list, workdir: Path) -> dict:
    import torch

    from harness.components import TrainContext
    from harness.plugins import make_registry

    trainer = make_registry().create("trainer", trainer_name, opts)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times: list[float] = []
    t_last = [time.perf_counter()]

    def progress(step: int, total: int) -> None:
        now = time.perf_counter()
        times.append(now - t_last[0])
        t_last[0] = now

    ctx = TrainContext(classes=(), prompt="", evaluate=lambda *a: None, progress=progress)
    result = trainer.train(spec, data, [], workdir, ctx)
    steady = times[1:] or times  # the first step includes CUDA/kernel warm-up
    per_step = sum(steady) / len(steady)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    del result
    return {
        "trainer": trainer_name,
        "batch": opts["batch_size"],
        "samples_per_s": opts["batch_size"] / per_step,
        "s_per_step": per_step,
        "peak_gib": peak,
        "trainable": None,
    }


def eval_case(model, processor, data: list, batch: int, new_tokens: int) -> dict:
    import torch

    from harness.evaluation import GenerationConfig, generate_answers

    cfg = GenerationConfig(max_new_tokens=new_tokens, batch_size=batch)
    images, prompts = [s.image for s in data], [s.prompt for s in data]
    generate_answers(model, processor, images[:batch], prompts[:batch], cfg)  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    generate_answers(model, processor, images, prompts, cfg)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    return {"batch": batch, "images": len(images), "images_per_s": len(images) / secs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", choices=["3b", "tiny"], default="3b")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--train-batches", default="2,8")
    ap.add_argument("--eval-batches", default="1,8,32")
    ap.add_argument("--new-tokens", type=int, default=96)
    ap.add_argument("--qlora", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from harness.modeling import ModelSpec, load_base

    console = Console()
    work = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    if args.arch == "3b":
        from qwen3b import write_random_checkpoint

        t0 = time.perf_counter()
        ckpt = write_random_checkpoint(work / "qwen2.5-vl-3b-random")
        console.print(f"random 3B checkpoint written in {time.perf_counter() - t0:.0f}s")
        spec = ModelSpec(model=str(ckpt), min_pixels=448 * 448, max_pixels=448 * 448)
        size = 448
    else:
        spec, size = ModelSpec(model="tiny"), 112
    data = samples(64, size)
    base = {
        "r": 16,
        "alpha": 16,
        "dropout": 0.15,
        "finetune_vision_layers": True,
        "finetune_language_layers": True,
        "finetune_attention_modules": True,
        "finetune_mlp_modules": False,
        "lr": 1e-4,
        "max_steps": args.steps,
        "eval_every": None,
    }
    rows: list[dict] = []
    cases = [("rslora", {**base, "batch_size": b}) for b in map(int, args.train_batches.split(","))]
    cases.append(("rslora", {**base, "batch_size": 8, "gradient_checkpointing": True}))
    if args.qlora:
        cases.append(("qlora", {**base, "batch_size": 2, "gradient_checkpointing": True}))
    for name, opts in cases:
        try:
            row = train_case(spec, name, opts, data, work / f"{name}-{opts['batch_size']}")
            row["gradient_checkpointing"] = opts.get("gradient_checkpointing", False)
            rows.append(row)
        except Exception as exc:  # report and go on: one OOM must not lose the other figures
            rows.append({"trainer": name, "batch": opts["batch_size"], "error": repr(exc)[:300]})
            traceback.print_exc()
    evals: list[dict] = []
    model, processor = load_base(spec)
    for b in map(int, args.eval_batches.split(",")):
        n = b * 2 if b > 1 else 4
        try:
            evals.append(eval_case(model, processor, data[:n], b, args.new_tokens))
        except Exception as exc:
            evals.append({"batch": b, "error": repr(exc)[:300]})
    dev = card()
    table = Table(title=f"training ({args.arch}, {dev}, torch {torch.__version__})")
    for col in ("trainer", "batch", "grad ckpt", "samples/s", "s/step", "peak GiB"):
        table.add_column(col)
    for r in rows:
        if "error" in r:
            table.add_row(r["trainer"], str(r["batch"]), "", "error", r["error"][:40], "")
            continue
        table.add_row(
            r["trainer"],
            str(r["batch"]),
            str(r["gradient_checkpointing"]),
            f"{r['samples_per_s']:.2f}",
            f"{r['s_per_step']:.3f}",
            f"{r['peak_gib']:.2f}",
        )
    console.print(table)
    et = Table(title=f"batched greedy eval, {args.new_tokens} new tokens ({dev})")
    for col in ("batch", "images", "images/s"):
        et.add_column(col)
    for e in evals:
        et.add_row(
            str(e["batch"]),
            str(e.get("images", "")),
            f"{e['images_per_s']:.2f}" if "images_per_s" in e else e["error"][:60],
        )
    console.print(et)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "card": dev,
                    "arch": args.arch,
                    "train": rows,
                    "eval": evals,
                    "torch": torch.__version__,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
