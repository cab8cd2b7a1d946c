"""Training curves sent to TensorBoard or MLflow through transformers' own ``report_to``
integrations, with their files inside the configuration's run folder.

``-o trainer.report_to=tensorboard`` writes event files to ``runs/<config>/tensorboard/``;
``-o trainer.report_to=mlflow`` writes a local MLflow file store to ``runs/<config>/mlruns/``
(unless ``MLFLOW_TRACKING_URI`` already names another store). The harness's in-training
validation metrics are logged beside the loss, under ``eval/``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from harness.core.errors import BackendUnavailableError

ReportTo = Literal["none", "tensorboard", "mlflow"]

# report_to value -> (module that must import, the extra that installs it)
_NEEDS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}
TB_DIR, MLFLOW_DIR = "tensorboard", "mlruns"


def check_tracking(report_to: ReportTo) -> None:
    """Fail before any work when the integration's package is not installed."""
    if report_to not in _NEEDS:
        return
    module, extra = _NEEDS[report_to]
    if importlib.util.find_spec(module) is None:
        raise BackendUnavailableError(
            f"trainer.report_to={report_to} needs the {module!r} package, which is not "
            f"installed: pip install 'cxr-harness[{extra}]' (or -o trainer.report_to=none)"
        )


def report_to_list(report_to: ReportTo) -> list[str]:
    """The ``report_to`` of transformers' TrainingArguments: nothing unless asked for."""
    return [] if report_to == "none" else [report_to]


def point_into(trainer: Any, report_to: ReportTo, workdir: Path) -> None:
    """Give the TensorBoard integration its logging folder inside the run folder."""
    if report_to != "tensorboard":
        return
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and not os.environ.get(
            "TENSORBOARD_LOGGING_DIR"
        ):
            callback.logging_dir = str(workdir / TB_DIR)


@contextmanager
def tracking_env(report_to: ReportTo, workdir: Path) -> Iterator[None]:
    """MLflow's integration reads its store from the environment: point it at a local file
    store in the run folder for the length of training (an explicit MLFLOW_TRACKING_URI wins)."""
    if report_to != "mlflow":
        yield
        return
    wanted = {
        "MLFLOW_TRACKING_URI": (workdir / MLFLOW_DIR).resolve().as_uri(),
        "MLFLOW_EXPERIMENT_NAME": "cxr-harness",
        # MLflow 3 refuses a file store unless asked: a folder in the run needs no server
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update({k: v for k, v in wanted.items() if not saved[k]})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
