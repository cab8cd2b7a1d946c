"""PNG plots (matplotlib, Agg backend): a confusion matrix per configuration, a metric bar
chart with CI whiskers and, per trained configuration, its training curve (loss against step,
with the in-training validation metrics where they were logged). matplotlib is imported
lazily (it is slow to import)."""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.atomic import follow_umask
from harness.exports.common import Rows, metric_columns, ordered, slug


def _figure(width: float, height: float) -> Any:
    """A bare Agg figure: no pyplot state, nothing to close, safe in threads and servers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def plot_confusion(path: Path, title: str, item: Mapping[str, Any]) -> None:
    """Counts annotated; colour = share of the true class (row-normalised)."""
    mat = item["confusion"]
    cols = item["classes"] + ["invalid"]
    share = mat / mat.sum(axis=1, keepdims=True).clip(min=1)
    size = max(4.0, 0.55 * len(cols) + 2.0)
    fig = _figure(size + 0.8, size)
    ax = fig.add_axes((0.28, 0.22, 0.55, 0.68))  # room for long class names
    cax = fig.add_axes((0.86, 0.22, 0.03, 0.68))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(mat):
        if v:
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if share[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(item["classes"])), item["classes"], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.axvline(len(cols) - 1.5, color="grey", lw=0.8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, cax=cax, label="share of true class")
    _save(fig, path)


def plot_metrics(path: Path, rows: Rows, analysis: Mapping[str, Any]) -> None:
    """Grouped bars of the headline metrics with 95% bootstrap CI whiskers."""
    rows_sorted = ordered(rows)
    metrics = [
        (m, t)
        for m, t in [(c.name, c.title) for c in metric_columns(analysis) if c.paired]
        if any(m in r["metrics"] for r in rows_sorted)
    ]
    width = 0.8 / len(metrics)
    fig = _figure(max(6.0, 1.1 * len(rows_sorted) + 2), 4.5)
    ax = fig.subplots()
    x = np.arange(len(rows_sorted))
    for k, (m, title) in enumerate(metrics):
        vals = np.array([float(r["metrics"].get(m, 0.0)) for r in rows_sorted])
        cis = [analysis["configs"][r["config_id"]]["ci"].get(m) for r in rows_sorted]
        err = np.array(
            [[v - c.low, c.high - v] if c else [0, 0] for v, c in zip(vals, cis, strict=True)]
        )
        ax.bar(
            x + (k - (len(metrics) - 1) / 2) * width,
            vals,
            width,
            label=title,
            yerr=err.T.clip(min=0),
            capsize=3,
            error_kw={"lw": 0.8},
        )
    ax.set_xticks(x, [r["config_id"] for r in rows_sorted], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (95% bootstrap CI)")
    ax.legend(fontsize=8, ncols=len(metrics), loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()  # one figure only: worth the extra draw for long configuration names
    _save(fig, path)


def training_curve(history: list[Mapping[str, Any]]) -> tuple[list, dict[str, list]]:
    """``[(step, loss)]`` and ``{metric: [(step, value)]}`` of a row's training history."""
    loss = [(int(h["step"]), float(h["loss"])) for h in history if "loss" in h and "step" in h]
    val: dict[str, list] = {}
    for h in history:
        for key in ("val_macro_f1", "val_accuracy", "val_rouge_l"):
            if isinstance(h.get(key), int | float):
                val.setdefault(key, []).append((int(h["step"]), float(h[key])))
    return loss, val


def plot_training(path: Path, title: str, history: list[Mapping[str, Any]]) -> None:
    """Training loss against step; validation metrics (0-1) on a second axis."""
    loss, val = training_curve(history)
    fig = _figure(6.4, 3.8)
    ax = fig.subplots()
    ax.plot(*zip(*loss, strict=True), color="tab:blue", marker=".", label="training loss")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if val:
        ax2 = ax.twinx()
        for key, points in val.items():
            ax2.plot(*zip(*points, strict=True), marker="o", ls="--", label=key.replace("_", " "))
        ax2.set_ylim(0, 1.05)
        ax2.set_ylabel("validation score")
        more = ax2.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, fontsize=8, loc="upper right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    """Render to a temp file then rename, like every other output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100, pil_kwargs={"compress_level": 1})
        follow_umask(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_plots(out: Path, rows: Rows, analysis: Mapping[str, Any], workers: int = 1) -> list[Path]:
    """metrics.png, confusion-<config>.png per configuration and training-<config>.png per
    configuration whose history logged a loss.

    ``workers > 1`` renders the confusion matrices in forked processes: for `harness report`
    (a fresh CLI process), never from a process that may hold CUDA or torch threads.
    """
    jobs = []
    for r in rows:
        item = analysis["configs"][r["config_id"]]
        if "confusion" in item:
            f1, n = r["metrics"].get("macro_f1", float("nan")), int(item["confusion"].sum())
            small = {"confusion": item["confusion"], "classes": item["classes"]}
            title = f"{r['config_id']}  (Macro-F1 {f1:.3f}, n={n})"
            jobs.append((out / f"confusion-{slug(r['config_id'])}.png", title, small))
    curves = [
        (out / f"training-{slug(r['config_id'])}.png", f"{r['config_id']}: training", r["history"])
        for r in rows
        if training_curve(r.get("history") or [])[0]
    ]
    paths = [out / "metrics.png"] + [j[0] for j in jobs] + [c[0] for c in curves]
    _figure(1, 1)  # import matplotlib once, before any fork
    if workers > 1 and len(jobs) > 1 and "fork" in mp.get_all_start_methods():
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx) as pool:
            pending = [pool.submit(plot_confusion, *job) for job in jobs]
            plot_metrics(paths[0], rows, analysis)
            for curve in curves:
                plot_training(*curve)
            for fut in pending:
                fut.result()
    else:
        plot_metrics(paths[0], rows, analysis)
        for job in jobs:
            plot_confusion(*job)
        for curve in curves:
            plot_training(*curve)
    return paths
