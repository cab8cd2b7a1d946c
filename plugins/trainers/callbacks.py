"""In-training evaluation with the one runner: best checkpoint, quality gate, early stopping."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from harness.components import TrainContext
from harness.core.atomic import follow_umask
from harness.data.sample import Sample


class EvalCallback(TrainerCallback):
    """Every ``every`` steps, score ``val_set`` with the benchmark's runner (images included).

    * keeps the best checkpoint by validation Macro-F1 in ``best_dir``;
    * never saves a checkpoint whose validation ROUGE-L is below ``min_rouge_l`` (quality gate);
    * stops training after ``patience`` evaluations without a Macro-F1 improvement.
    """

    def __init__(
        self,
        context: TrainContext,
        processor: Any,
        val_set: list[Sample],
        every: int,
        best_dir: Path,
        min_rouge_l: float = 0.0,
        patience: int | None = None,
    ) -> None:
        self.context, self.processor, self.val_set = context, processor, val_set
        self.every, self.best_dir = every, best_dir
        self.min_rouge_l, self.patience = min_rouge_l, patience
        self.best_f1 = float("-inf")  # best seen, for early stopping
        self.best_saved_f1 = float("-inf")  # best that passed the gate and was saved
        self.best_step: int | None = None
        self.since_best = 0
        self.log: list[dict[str, Any]] = []
        self.gate_blocked = 0
        self.stopped_early_at: int | None = None
        # the trainer's own log (Trainer.log): the metrics reach report_to integrations
        self.log_to: Callable[[dict[str, float]], None] | None = None

    def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        if not self.val_set or state.global_step % self.every:
            return control
        result = self.context.evaluate(model, self.processor, self.val_set)
        m = result.metrics
        entry = {"step": state.global_step, **{f"val_{k}": v for k, v in m.items()}}
        improved = m["macro_f1"] > self.best_f1
        if improved:
            self.best_f1, self.since_best = m["macro_f1"], 0
        else:
            self.since_best += 1
        if m["macro_f1"] > self.best_saved_f1:
            if m.get("rouge_l", 0.0) >= self.min_rouge_l:  # absent under likelihood scoring
                model.save_pretrained(str(self.best_dir), safe_serialization=True)
                follow_umask(self.best_dir)
                self.best_saved_f1, self.best_step = m["macro_f1"], state.global_step
                entry["saved"] = True
            else:
                self.gate_blocked += 1
                entry["gate_blocked"] = True
        self.log.append(entry)
        if self.log_to is not None:
            numbers = {k: v for k, v in m.items() if isinstance(v, int | float)}
            should_log = control.should_log  # Trainer.log clears it: keep this step's loss log
            self.log_to({f"eval_{k}": float(v) for k, v in numbers.items()})
            control.should_log = should_log
        if self.patience is not None and self.since_best >= self.patience:
            control.should_training_stop = True
            self.stopped_early_at = state.global_step
        return control

    def summary(self) -> dict[str, Any]:
        return {
            "best_step": self.best_step,
            "best_val_macro_f1": None if self.best_step is None else self.best_saved_f1,
            "gate_blocked": self.gate_blocked,
            "stopped_early_at": self.stopped_early_at,
            "evaluations": len(self.log),
        }


class ProgressCallback(TrainerCallback):
    """Reports every optimiser step with the latest logged loss to the runner's progress, and
    keeps every training log (loss, learning rate, grad norm) as the run's history.

    In-training evaluations logged through the trainer (``eval_*`` keys) are left out of the
    history: :class:`EvalCallback` records them itself, with its save/gate flags.
    """

    def __init__(self, progress: Callable[..., None] | None, total: int) -> None:
        self.progress, self.total = progress, total
        self.history: list[dict[str, Any]] = []
        self.loss: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        if not logs or any(k.startswith("eval_") for k in logs):
            return
        self.history.append({"step": state.global_step, **logs})
        if isinstance(logs.get("loss"), int | float):
            self.loss = float(logs["loss"])
        self._report(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if not control.should_log:  # else on_log reports this step, with its fresh loss
            self._report(state.global_step)

    def _report(self, step: int) -> None:
        if self.progress is not None:
            self.progress(step, self.total, self.loss)
