"""Wall time of the user's own commands on a GPU, timed from process start, with each stage's
seconds read from the run's own ``events.jsonl``: today's defaults vs the previous ones (plain
decoding, the preset batch of 16), with the compile cache cold and warm. Device only.

    python perf/user_commands.py --out-json perf/results/user_commands_h200.json [--model DIR]

Cases, in this order (a fresh compile cache first, so "cold" is cold):
  new-cold   harness bench --model DIR --trainer rslora --augmenter noise_rotate \
             -o trainer.max_steps=40
  new-warm   the same again (compile cache warm)
  old        the same with the previous defaults: --decoding plain --eval-batch-size 16, and
             -o trainer.batch_size=2 -o trainer.grad_accum=4 -o trainer.gradient_checkpointing=false
  eval-new   harness eval --model DIR --adapter <new-warm's adapter> (warm)
  eval-old   the same with --decoding plain --eval-batch-size 16
  eval-base-old / eval-base-new   harness eval --model DIR (the base), previous / current defaults
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

sys.path.insert(0, str(Path(__file__).parent))

BENCH = ["--trainer", "rslora", "--augmenter", "noise_rotate", "-o", "trainer.max_steps=40"]
OLD_EVAL = ["--decoding", "plain", "--eval-batch-size", "16"]
# the previous Qwen2.5-VL training defaults: the same 8 samples per step as 2 x 4, no checkpointing
OLD_TRAIN = ["-o", "trainer.batch_size=2", "-o", "trainer.grad_accum=4"]
OLD_TRAIN += ["-o", "trainer.gradient_checkpointing=false"]


def outside(out: Path, started: float, ended: float) -> dict[str, float]:
    """Seconds outside the stages: process start to ``run_started`` (imports, plan), from there
    to the first stage (benchmark, model hash), between stages, and after the last to exit."""
    from datetime import datetime

    from harness.results.events import read_events

    events = [(datetime.fromisoformat(e["t"]).timestamp(), e) for e in read_events(out)]
    begun = next(t for t, e in events if e["event"] == "run_started")
    starts = [(t, e) for t, e in events if e["event"] == "stage_started"]
    ends = [(t, e) for t, e in events if e["event"] == "stage_finished"]
    between = sum(max(0.0, s[0] - f[0]) for f, s in zip(ends, starts[1:], strict=False))
    return {
        "to_run_started": round(begun - started, 2),
        "to_first_stage": round(starts[0][0] - begun, 2) if starts else None,
        "between_stages": round(between, 2),
        "after_last_stage_to_exit": round(ended - ends[-1][0], 2) if ends else None,
    }


def stages(out: Path) -> dict[str, float]:
    from harness.results.events import read_events

    return {
        e["stage"]: round(float(e["seconds"]), 2)
        for e in read_events(out)
        if e.get("event") == "stage_finished"
    }


class PeakMemory:
    """The GPU's peak used memory (nvidia-smi, every 0.5 s) while a command runs, in GiB."""

    def __init__(self) -> None:
        import threading

        self.peak_mib, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        query = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
        while not self._stop.is_set():
            try:
                used = int(subprocess.run(query, capture_output=True, text=True).stdout.split()[0])
                self.peak_mib = max(self.peak_mib, used)
            except (OSError, ValueError, IndexError):
                pass
            self._stop.wait(0.5)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(name: str, args: list[str], out: Path, env: dict[str, str]) -> dict:
    cmd = [sys.executable, "-m", "harness.cli", *args, "--out", str(out)]
    t0, clock0 = time.perf_counter(), time.time()
    with PeakMemory() as memory:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    tail = (proc.stdout + proc.stderr)[-1500:]
    print(f"== {name}: rc={proc.returncode} wall={wall:.1f}s\n{tail}", flush=True)
    rec = {"case": name, "command": "harness " + " ".join(args), "rc": proc.returncode}
    rec["wall_s"] = round(wall, 2)
    rec["peak_gpu_gib"] = round(memory.peak_mib / 1024, 2)
    rec["reproduced_card"] = "metrics match the run's record" in proc.stdout
    if proc.returncode == 0:
        rec["stages"] = stages(out)
        rec["outside_stages_s"] = round(wall - sum(rec["stages"].values()), 2)
        rec["outside"] = outside(out, clock0, clock0 + wall)
        results = json.loads((out / "results.json").read_text())["results"]
        rec["rows"] = [
            {
                "config": r["config_id"],
                "metrics": {k: r["metrics"].get(k) for k in ("macro_f1", "accuracy", "rouge_l")},
                "train_seconds": r["train_seconds"],
                "eval_seconds": r["eval_seconds"],
                "adapter_dir": r["adapter_dir"],
                "steps_run": (r.get("resolved") or {}).get("steps_run"),
                "merged": r["fast_paths"]["paths"]["merged_adapter"]["applied"],
                "on_shared_base": r["fast_paths"]["paths"]["merged_adapter"].get("on_shared_base"),
            }
            for r in results
        ]
        gen = json.loads((out / "provenance.json").read_text()).get("generation")
        rec["generation"] = gen
    print("RECORD " + json.dumps(rec), flush=True)
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--out-json", type=Path, required=True)
    ap.add_argument("--cases", default="new-cold,new-warm,old,eval-new,eval-old")
    ap.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="start no case after this many seconds (the JSON so far is always on disk)",
    )
    args = ap.parse_args()
    started = time.perf_counter()
    import torch

    work = Path(tempfile.mkdtemp(prefix="user-cmds-"))
    model = args.model
    if model is None:
        from qwen3b import write_random_checkpoint

        model = write_random_checkpoint(work / "qwen3b")
        torch.cuda.empty_cache()
    env = {**os.environ, "CXR_HARNESS_COMPILE_CACHE": str(work / "compile-cache")}
    for var in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        env.pop(var, None)
    base = ["bench", "--model", str(model), *BENCH]
    records: list[dict] = []
    props = torch.cuda.get_device_properties(0)
    meta = {
        "card": props.name,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "torch": torch.__version__,
        "model": "Qwen2.5-VL-3B architecture, random weights (perf/qwen3b.py)",
    }

    def save() -> None:  # after every case, atomically: a run cut short keeps what it measured
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out_json.with_suffix(".tmp")
        tmp.write_text(json.dumps({"meta": meta, "cases": records}, indent=2) + "\n")
        os.replace(tmp, args.out_json)

    def go(name: str, cmd: list[str]) -> dict | None:
        if args.budget_s is not None and time.perf_counter() - started > args.budget_s:
            print(f"== {name}: not started (past --budget-s {args.budget_s:.0f})", flush=True)
            return None
        rec = run(name, cmd, work / name, env)
        records.append(rec)
        save()
        return rec

    wanted = args.cases.split(",")
    adapter = None
    plan = [
        ("new-cold", base),
        ("new-warm", base),
        ("old", base + OLD_EVAL + OLD_TRAIN),
    ]
    for name, cmd in plan:
        if name in wanted:
            rec = go(name, cmd)
            if rec and rec["rc"] == 0 and rec["rows"] and adapter is None:
                adapter = next((r["adapter_dir"] for r in rec["rows"] if r["adapter_dir"]), None)
    for name, extra in (("eval-new", []), ("eval-old", OLD_EVAL)):
        if name in wanted and adapter:
            go(name, ["eval", "--model", str(model), "--adapter", adapter, *extra])
    for name, extra in (("eval-base-old", OLD_EVAL), ("eval-base-new", [])):
        if name in wanted:
            go(name, ["eval", "--model", str(model), *extra])
    save()
    print(json.dumps({"meta": meta, "cases": records}, indent=1))


if __name__ == "__main__":
    main()
