"""Time re-rendering every report from the results store of a 10,000-prediction run.

Builds a synthetic store (base + 9 fine-tuned configurations x 1,000 test images = 10,000
predictions, 8 classes), then times (1) loading + write_all in-process and (2) the whole
`harness report DIR` command in a fresh interpreter (imports included). Target: < 5 s each.

    python perf/report_rerender.py [--configs 10] [--images 1000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harness.evaluation import stats
from harness.exports import write_all
from harness.results.store import ResultsStore

CLASSES = [f"class_{k}" for k in range(8)]
TARGET_S = 5.0


def build_store(directory: Path, n_configs: int, n_images: int) -> int:
    rng = np.random.default_rng(0)
    labels = [CLASSES[i % len(CLASSES)] for i in range(n_images)]
    prov = {
        "benchmark": {
            "name": "synthetic",
            "fingerprint": "0" * 16,
            "classes": CLASSES,
            "sizes": {"test": n_images},
            "test_counts": {c: labels.count(c) for c in CLASSES},
        },
        "model": {"model": "tiny"},
        "prompt_hash": "p" * 16,
        "generation": {"max_new_tokens": 48, "batch_size": 32},
    }
    total = 0
    with ResultsStore.open(directory) as store:
        run = store.save_run(prov, {})
        for k in range(n_configs):
            skill = 0.3 + 0.6 * k / max(1, n_configs - 1)
            preds = []
            for i, lab in enumerate(labels):
                u = rng.random()
                p = None if u < 0.03 else lab if u < skill else CLASSES[rng.integers(8)]
                preds.append(
                    {
                        "id": f"img{i:05d}",
                        "label": lab,
                        "prediction": p,
                        "valid": p is not None,
                        "invalid_reason": None if p else "no Class: line",
                        "rouge_l": float(rng.random()),
                        "answer": f"Class: {p}\nExplanation: synthetic answer number {i}.",
                    }
                )
            trainer = "base" if k == 0 else "rslora"
            cid = "base" if k == 0 else f"rslora+none+template@s{k}"
            store.save_config_result(
                {
                    "config_id": cid,
                    "trainer": trainer,
                    "augmenter": "none",
                    "synthesizer": "none" if k == 0 else "template",
                    "seed": k,
                    "metrics": stats.point_metrics(stats.encode(preds, CLASSES)),
                    "n_test": n_images,
                    "trainable_params": 0 if k == 0 else 1_000_000,
                    "train_seconds": 0.0,
                    "eval_seconds": 0.0,
                    "predictions": preds,
                },
                run,
            )
            total += len(preds)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=10)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        n = build_store(run_dir, args.configs, args.images)
        t0 = time.perf_counter()
        c0 = time.process_time()
        with ResultsStore.open(run_dir, create=False) as store:
            rows, prov, base = store.load()
        t_load = time.perf_counter() - t0
        written = write_all(run_dir, rows, prov, base, n_resamples=args.resamples)
        t_inproc = time.perf_counter() - t0
        cpu_inproc = time.process_time() - c0
        cmd = [
            sys.executable,
            "-c",
            "import sys; from harness.commands.report import report_cmd; "
            "report_cmd(sys.argv[1:], standalone_mode=True)",
            str(run_dir),
            "--resamples",
            str(args.resamples),
        ]
        t1 = time.perf_counter()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        t_cli = time.perf_counter() - t1
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_cli = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
    table = Table(title=f"Re-render from results.sqlite: {n:,} predictions, {args.configs} configs")
    table.add_column("Stage")
    table.add_column("Wall s", justify="right")
    table.add_column("CPU s", justify="right")
    table.add_column(f"< {TARGET_S:.0f} s", justify="center")
    table.add_row("load rows from SQLite", f"{t_load:.2f}", "", "")
    table.add_row(
        f"load + write_all ({len(written)} files)",
        f"{t_inproc:.2f}",
        f"{cpu_inproc:.2f}",
        "yes" if t_inproc < TARGET_S else "NO",
    )
    table.add_row(
        "`harness report DIR` (fresh process)",
        f"{t_cli:.2f}",
        f"{cpu_cli:.2f}",
        "yes" if t_cli < TARGET_S else "NO",
    )
    Console().print(table)
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    Console().print(
        f"1-min load average {load} on {os.cpu_count()} cores (wall time includes "
        "contention; CPU time does not)."
    )


if __name__ == "__main__":
    main()
