"""CLI sub-commands. With harness/cli.py, the only code that prints and exits.

Each module exposes click commands/groups that ``harness.cli`` adds to the main group.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from rich.console import Console

from harness.core.errors import HarnessError


def _width() -> int | None:
    """Rich falls back to 80 columns when piped, which wraps the leaderboards; use 160 then."""
    import os

    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return None
    return 160


console = Console(width=_width())
err_console = Console(stderr=True)


def eval_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The --scoring and --decoding options shared by `bench` and `eval`."""
    command = click.option(
        "--decoding",
        type=click.Choice(["auto", "plain", "static", "compiled"]),
        default="auto",
        show_default=True,
        help="Generation KV cache: auto (compiled on a CUDA GPU, plain elsewhere), plain "
        "(dynamic), static (fixed shapes), compiled (static + compiled decode step, LoRA "
        "adapters merged while evaluating; CUDA only). All give the same greedy answers.",
    )(command)
    return click.option(
        "--scoring",
        type=click.Choice(["generate", "likelihood", "both"]),
        default="generate",
        show_default=True,
        help="generate: greedy answers, parsed (Macro-F1, accuracy, ROUGE-L). likelihood: "
        "the label greedy decoding restricted to the class names picks, from one prefill "
        "(Macro-F1 and accuracy only; much faster). both: the generated row plus the "
        "likelihood-scored Macro-F1 and accuracy beside it (answer format vs knowledge).",
    )(command)


def fail(exc: HarnessError | str) -> NoReturn:
    """Print a one-line error and exit with code 2 (bad input), never a traceback."""
    from rich.markup import escape

    # escaped: a message's own brackets (pip install 'pkg[extra]') are text, not markup
    err_console.print(
        f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True
    )
    sys.exit(2)


def set_torch_threads(threads: int | None) -> None:
    """torch CPU threads: 1 on machines with <= 2 cores (oversubscription was 40x slower)."""
    import os

    import torch

    cores = os.cpu_count() or 1
    torch.set_num_threads(threads or (1 if cores <= 2 else min(8, cores // 2)))


def executor_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Where `bench` runs configurations: --executor, --workers, --address, --gpus-per-config."""
    for option in reversed(
        [
            click.option(
                "--executor",
                type=click.Choice(["serial", "local", "ray"]),
                default="serial",
                show_default=True,
                help="serial: one after another here; local: one worker process per visible "
                "GPU (--workers N on CPU); ray: one Ray task per configuration (extra "
                "cxr-harness[ray]). Only this process writes the store.",
            ),
            click.option(
                "--workers",
                type=click.IntRange(min=1),
                default=None,
                help="--executor local: worker processes (default: one per visible GPU, else 1).",
            ),
            click.option(
                "--address",
                default=None,
                help="--executor ray: address of a running Ray cluster (default: start Ray here).",
            ),
            click.option(
                "--gpus-per-config",
                type=click.FloatRange(min=0),
                default=None,
                help="--executor ray: GPUs each configuration asks for (default 1 on GPU, else 0).",
            ),
        ]
    ):
        command = option(command)
    return command
