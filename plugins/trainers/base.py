"""The ``base`` trainer: no training; evaluates the model as loaded."""

from __future__ import annotations

import time
from pathlib import Path

from harness.components import TrainContext, Trainer, TrainResult
from harness.data import Sample
from harness.hookspecs import hookimpl
from harness.modeling import ModelSpec, load_base


class BaseTrainer(Trainer):
    name = "base"
    description = "No training: the base model as loaded (the reference row)."

    def train(
        self,
        model_spec: ModelSpec,
        train_set: list[Sample],
        val_set: list[Sample],
        workdir: Path,
        context: TrainContext,
    ) -> TrainResult:
        t0 = time.perf_counter()
        model, processor = load_base(model_spec)
        total = sum(p.numel() for p in model.parameters())
        return TrainResult(
            model=model,
            processor=processor,
            total_params=total,
            train_seconds=time.perf_counter() - t0,
            resolved={},
        )


@hookimpl
def register_trainers(register) -> None:
    register(BaseTrainer)
