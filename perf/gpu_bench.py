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
from pathlib import Path

from rich.console import Console
from rich.table import Table

# The seed-like rsLoRA recipe every GPU measurement trains (the speed baseline).
SEED_LIKE = {
    "r": 16,
    "alpha": 16,
    "dropout": 0.15,
    "finetune_vision_layers": True,
    "finetune_language_layers": True,
    "finetune_attention_modules": True,
    "finetune_mlp_modules": False,
    "eval_every": None,
}


def samples(n: int, size: int, seed: int = 0) -> list:
    from harness.data.labels import PHANTOM8_CLASSES
    from harness.data.phantoms import render_phantom
    from harness.data.sample import Sample
    from harness.model.prompts import eval_prompt

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


def sync() -> None:
    """Wait for the GPU (a no-op on the CPU), so wall-clock timings cover the work."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, reps: int = 3, warmup: bool = True) -> float:
    """Median seconds of `fn()` over `reps` synchronised runs, after one warm-up call."""
    if warmup:
        fn()
        sync()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return sorted(out)[len(out) // 2]


def perf_model(arch: str, work: Path) -> tuple[dict, int]:
    """(ModelSpec kwargs, image side): the random-weight 3B checkpoint (written once under
    `work`) at 448 px, or the embedded tiny model at 112 px."""
    if arch == "tiny":
        return {"model": "tiny"}, 112
    from qwen3b import write_random_checkpoint

    ckpt = work / "qwen2.5-vl-3b-random"
    ckpt = ckpt if (ckpt / "config.json").exists() else write_random_checkpoint(ckpt)
    return {"model": str(ckpt), "min_pixels": 448 * 448, "max_pixels": 448 * 448}, 448


def train_case(
    spec, trainer_name: str, opts: dict, data: list, workdir: Path, on_step=None
) -> dict:
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
        if on_step is not None:
            on_step()

    ctx = TrainContext(classes=(), prompt="", evaluate=lambda *a: None, progress=progress)
    result = trainer.train(spec, data, [], workdir, ctx)
    steady = times[2:] or times  # the first steps include CUDA/kernel warm-up
    per_step = sum(steady) / len(steady)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    trainable = result.trainable_params
    losses = [(h["step"], h["loss"]) for h in result.history if "loss" in h]
    del result
    return {
        "trainer": trainer_name,
        "batch": opts["batch_size"],
        "samples_per_s": opts["batch_size"] / per_step,
        "s_per_step": per_step,
        "peak_gib": peak,
        "trainable": trainable,
        "losses": losses,
    }


def eval_case(model, processor, data: list, batch: int, new_tokens: int) -> dict:
    import torch

    from harness.evaluation.generate import GenerationConfig, generate_answers

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


def run_case(case: dict) -> dict:
    """One measurement in this (fresh) process, so peak memory is this case's alone."""
    import torch

    from harness.model.loading import ModelSpec, load_base

    spec = ModelSpec(**case["spec"])
    data = samples(case.get("n", 64), case["size"])
    if case["kind"] == "train":
        row = train_case(spec, case["trainer"], case["opts"], data, Path(case["workdir"]))
        row["gradient_checkpointing"] = case["opts"].get("gradient_checkpointing", False)
        return row
    model, processor = load_base(spec)
    row = eval_case(model, processor, data, case["batch"], case["new_tokens"])
    row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", choices=["3b", "tiny"], default="3b")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--train-batches", default="2,8")
    ap.add_argument("--eval-batches", default="1,8,32")
    ap.add_argument("--new-tokens", type=int, default=96)
    ap.add_argument("--qlora", default="", help="QLoRA batch sizes, e.g. 2,8")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:  # child process: one case, JSON on the last line
        print("CASE-RESULT " + json.dumps(run_case(json.loads(args.case))))
        return

    import subprocess
    import sys

    import torch

    console = Console()
    work = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    if args.arch == "3b":
        from qwen3b import write_random_checkpoint

        t0 = time.perf_counter()
        ckpt = write_random_checkpoint(work / "qwen2.5-vl-3b-random")
        console.print(f"random 3B checkpoint written in {time.perf_counter() - t0:.0f}s")
        spec = {"model": str(ckpt), "min_pixels": 448 * 448, "max_pixels": 448 * 448}
        size = 448
    else:
        spec, size = {"model": "tiny"}, 112
    base = {**SEED_LIKE, "lr": 1e-4, "max_steps": args.steps}
    cases = [("rslora", {**base, "batch_size": b}) for b in map(int, args.train_batches.split(","))]
    cases.append(("rslora", {**base, "batch_size": 8, "gradient_checkpointing": True}))
    cases += [
        ("qlora", {**base, "batch_size": b, "gradient_checkpointing": True})
        for b in map(int, filter(None, args.qlora.split(",")))
    ]
    jobs = [
        {
            "kind": "train",
            "trainer": n,
            "opts": o,
            "spec": spec,
            "size": size,
            "workdir": str(work / f"{n}-{i}"),
        }
        for i, (n, o) in enumerate(cases)
    ] + [
        {
            "kind": "eval",
            "batch": b,
            "n": b * 2 if b > 1 else 4,
            "spec": spec,
            "size": size,
            "new_tokens": args.new_tokens,
        }
        for b in map(int, args.eval_batches.split(","))
    ]
    rows: list[dict] = []
    for job in jobs:
        proc = subprocess.run(
            [sys.executable, __file__, "--case", json.dumps(job)], capture_output=True, text=True
        )
        line = next((x for x in proc.stdout.splitlines() if x.startswith("CASE-RESULT ")), None)
        if line is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            rows.append({**job, "error": tail[0][:300]})
        else:
            rows.append({**job, **json.loads(line.removeprefix("CASE-RESULT "))})
    dev = card()
    table = Table(title=f"training ({args.arch}, {dev}, torch {torch.__version__})")
    for col in ("trainer", "batch", "grad ckpt", "samples/s", "s/step", "peak GiB"):
        table.add_column(col)
    et = Table(title=f"batched greedy eval, {args.new_tokens} new tokens ({dev})")
    for col in ("batch", "images", "images/s", "peak GiB"):
        et.add_column(col)
    for r in rows:
        if r["kind"] == "train":
            if "error" in r:
                table.add_row(
                    r["trainer"], str(r["opts"]["batch_size"]), "", "error", r["error"][:60], ""
                )
                continue
            table.add_row(
                r["trainer"],
                str(r["batch"]),
                str(r["gradient_checkpointing"]),
                f"{r['samples_per_s']:.2f}",
                f"{r['s_per_step']:.3f}",
                f"{r['peak_gib']:.2f}",
            )
        elif "error" in r:
            et.add_row(str(r["batch"]), "", r["error"][:60], "")
        else:
            et.add_row(
                str(r["batch"]),
                str(r["images"]),
                f"{r['images_per_s']:.2f}",
                f"{r['peak_gib']:.2f}",
            )
    console.print(table)
    console.print(et)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {"card": dev, "arch": args.arch, "rows": rows, "torch": torch.__version__},
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
