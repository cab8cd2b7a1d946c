"""Trainers that do not train: ``base`` (the model as loaded) and ``adapter`` (a saved adapter
on its base, which is how ``harness eval --adapter`` runs as a one-configuration plan)."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from harness.components import Options, TrainContext, Trainer, TrainResult
from harness.data.sample import Sample
from harness.hookspecs import hookimpl
from harness.model.loading import ModelSpec, load_base


class BaseTrainer(Trainer):
    name = "base"
    description = "No training: the base model as loaded (the reference row)."
    trains = False

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


class AdapterOptions(Options):
    path: str = Field("", description="A saved adapter folder (a bench run's runs/*/adapter).")


class AdapterTrainer(Trainer):
    name = "adapter"
    description = "No training: a saved PEFT adapter on its base model (harness eval --adapter)."
    Options = AdapterOptions
    trains = False

    def preflight(self) -> None:
        """The folder is an adapter, and its base can be loaded here the way its run did
        (a 4-bit run's base in 4-bit: CUDA and bitsandbytes)."""
        from harness.model.adapters import check_adapter_dir, check_base_loadable

        if not self.options.path:
            from harness.core.errors import OptionError

            raise OptionError("trainer adapter: set the adapter folder with trainer.path=DIR")
        path = Path(self.options.path)
        check_adapter_dir(path)
        check_base_loadable(path)

    def train(
        self,
        model_spec: ModelSpec,
        train_set: list[Sample],
        val_set: list[Sample],
        workdir: Path,
        context: TrainContext,
    ) -> TrainResult:
        from harness.model.adapters import base_load_of, load_with_adapter, read_card

        t0 = time.perf_counter()
        path = Path(self.options.path)
        model, processor = load_with_adapter(model_spec, path)
        total = sum(p.numel() for p in model.parameters())
        card = read_card(path)
        return TrainResult(
            model=model,
            processor=processor,
            adapter_dir=path,
            total_params=total,
            train_seconds=time.perf_counter() - t0,
            resolved={
                "adapter": str(path),
                "trained_with": card.get("options", {}),
                "load_in_4bit": base_load_of(card).load_in_4bit,
            },
        )


@hookimpl
def register_trainers(register) -> None:
    register(BaseTrainer)
    register(AdapterTrainer)
