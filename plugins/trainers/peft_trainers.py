"""LoRA-family trainers (``lora``, ``rslora``) on HF transformers + PEFT + TRL ``SFTTrainer``.

Loss is completion-only: prompt and image tokens are masked, only the answer is learned.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import Field, field_validator

from cxr_harness_plugins.trainers.backends import (
    adapter_dtype,
    base_dtype,
    check_loaded_as_asked,
    checkpointing_on,
    precision_name,
    quantization_of,
    resolve_backend,
)
from cxr_harness_plugins.trainers.sft_args import sft_config, total_steps
from cxr_harness_plugins.trainers.tracking import ReportTo, check_tracking, point_into, tracking_env
from harness.components import Options, TrainContext, Trainer, TrainResult
from harness.core.atomic import follow_umask
from harness.core.errors import OptionError
from harness.data.sample import Sample
from harness.hookspecs import hookimpl
from harness.model.loading import ModelSpec, load_base

# Module-name patterns by group, as Unsloth's finetune_* flags split them (Qwen2.5-VL names).
GROUP_PATTERNS: dict[tuple[str, str], str] = {
    ("vision", "attention"): r".*visual\.blocks\.\d+\.attn\.(qkv|proj)",
    (
        "vision",
        "mlp",
    ): r".*visual\.(blocks\.\d+\.mlp\.(gate_proj|up_proj|down_proj)|merger\.mlp\.\d+)",
    ("language", "attention"): r".*language_model\.layers\.\d+\.self_attn\.(q|k|v|o)_proj",
    ("language", "mlp"): r".*language_model\.layers\.\d+\.mlp\.(gate|up|down)_proj",
}


class LoraOptions(Options):
    """One schema for every LoRA-family trainer. Model presets supply recommended defaults."""

    r: int = Field(16, ge=1, le=1024, description="LoRA rank.")
    alpha: float = Field(16.0, gt=0, description="LoRA alpha (scaling numerator).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    bias: Literal["none", "all", "lora_only"] = "none"
    finetune_vision_layers: bool = False
    finetune_language_layers: bool = True
    finetune_attention_modules: bool = True
    finetune_mlp_modules: bool = True
    target_modules: list[str] | None = Field(
        None, description="Explicit module names/suffixes; overrides the finetune_* groups."
    )
    train_embeddings: bool = Field(
        False, description="Train the (tied) token embedding / lm_head fully (modules_to_save)."
    )
    lr: float = Field(1e-4, gt=0, lt=1.0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="Overrides epochs when set.")
    batch_size: int = Field(2, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool = False
    seed: int = 0
    backend: Literal["auto", "hf", "unsloth"] = Field(
        "auto", description="auto: unsloth when it imports and CUDA is present, else hf."
    )
    load_in_4bit: bool = Field(False, description="bitsandbytes 4-bit base (CUDA only).")
    eval_every: int | None = Field(
        None, ge=1, description="Score the val split with the benchmark runner every N steps."
    )
    keep_best: bool = Field(True, description="Return/save the best val Macro-F1 checkpoint.")
    min_rouge_l: float = Field(
        0.0, ge=0.0, le=1.0, description="Quality gate: never save a checkpoint below this."
    )
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after N evaluations without a val Macro-F1 gain."
    )
    report_to: ReportTo = Field(
        "none",
        description="Training curves to TensorBoard or MLflow (a store in the run folder).",
    )


def target_pattern(opts: LoraOptions) -> str | list[str]:
    if opts.target_modules:
        return list(opts.target_modules)
    towers = [
        t
        for t, on in (
            ("vision", opts.finetune_vision_layers),
            ("language", opts.finetune_language_layers),
        )
        if on
    ]
    kinds = [
        k
        for k, on in (
            ("attention", opts.finetune_attention_modules),
            ("mlp", opts.finetune_mlp_modules),
        )
        if on
    ]
    if not towers or not kinds:
        raise OptionError("trainer: the finetune_* options select no module group")
    return "(" + "|".join(GROUP_PATTERNS[(t, k)] for t in towers for k in kinds) + ")"


def matched_modules(model: Any, pattern: str | list[str]) -> list[str]:
    import torch

    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if isinstance(pattern, str):
        return [n for n in names if re.fullmatch(pattern, n)]
    return [n for n in names if any(n == t or n.endswith("." + t) for t in pattern)]


class Loaded(NamedTuple):
    """A backend's PEFT-wrapped model and what training needs alongside it."""

    backend: str
    model: Any
    processor: Any
    collate_fn: Callable[[list], dict] | None  # None: the harness's own collate_sft
    pattern: Any  # target-module regex or list, as resolved
    modules: list[str]
    reason: str = ""  # why this backend (resolved["backend_reason"])


class LoraTrainer(Trainer):
    name = "lora"
    description = "LoRA adapters (PEFT) trained with TRL SFTTrainer, completion-only loss."
    Options = LoraOptions
    peft_extra: dict[str, Any] = {}

    @classmethod
    def model_defaults(cls, family: str) -> dict[str, Any]:
        from cxr_harness_plugins.trainers.family_defaults import lora_defaults

        return lora_defaults(cls.name, family)

    def preflight(self) -> None:
        """Options the chosen backend cannot honour, then CUDA/unsloth/4-bit availability."""
        resolve_backend(self.options, self.peft_extra)
        check_tracking(self.options.report_to)  # type: ignore[attr-defined]

    def train(
        self,
        model_spec: ModelSpec,
        train_set: list[Sample],
        val_set: list[Sample],
        workdir: Path,
        context: TrainContext,
    ) -> TrainResult:
        opts: LoraOptions = self.options  # type: ignore[assignment]
        choice = resolve_backend(opts, self.peft_extra)
        if choice.backend == "unsloth":
            from cxr_harness_plugins.trainers.unsloth_backend import load_unsloth

            parts = load_unsloth(model_spec, opts, self.peft_extra)
        else:
            parts = self._load_hf(model_spec, opts)
        loaded = Loaded(choice.backend, *parts, reason=choice.reason)
        check_loaded_as_asked(loaded.model, opts, choice.backend)
        return self._fit(loaded, model_spec, opts, train_set, val_set, workdir, context)

    def _load_hf(
        self, model_spec: ModelSpec, opts: LoraOptions
    ) -> tuple[Any, Any, None, Any, list[str]]:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
        from transformers import set_seed

        set_seed(opts.seed)
        model, processor = load_base(model_spec, load_in_4bit=opts.load_in_4bit)
        if opts.load_in_4bit:
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=opts.gradient_checkpointing
            )
        pattern = target_pattern(opts)
        modules = matched_modules(model, pattern)
        if not modules:
            raise OptionError(f"trainer {self.name!r}: target modules {pattern!r} match nothing")
        config = LoraConfig(
            r=opts.r,
            lora_alpha=opts.alpha,
            lora_dropout=opts.dropout,
            bias=opts.bias,
            target_modules=modules,
            modules_to_save=["embed_tokens", "lm_head"] if opts.train_embeddings else None,
            ensure_weight_tying=opts.train_embeddings,
            task_type="CAUSAL_LM",
            **self.peft_extra,
        )
        return get_peft_model(model, config), processor, None, pattern, modules

    def _fit(
        self,
        loaded: Loaded,
        model_spec: ModelSpec,
        opts: LoraOptions,
        train_set: list[Sample],
        val_set: list[Sample],
        workdir: Path,
        context: TrainContext,
    ) -> TrainResult:
        from datasets import Dataset
        from peft import load_peft_weights, set_peft_model_state_dict
        from transformers import PrinterCallback
        from trl import SFTTrainer

        from cxr_harness_plugins.trainers.callbacks import EvalCallback, ProgressCallback
        from harness.model.adapters import write_card
        from harness.model.prompts import format_answer
        from harness.model.sft import collate_sft

        backend, model, processor, collate_fn, pattern, modules, reason = loaded

        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        examples = [(s.image, s.prompt or "", format_answer(s.label, s.report)) for s in train_set]

        def collate(rows: list[dict[str, int]]) -> dict[str, Any]:
            batch = [examples[r["idx"]] for r in rows]
            return collate_fn(batch) if collate_fn else collate_sft(processor, batch)

        steps = total_steps(opts, len(examples))
        progress = ProgressCallback(context.progress, steps)
        callbacks: list[Any] = [progress]
        best_dir = workdir / "best"
        evaluator = None
        if opts.eval_every:
            evaluator = EvalCallback(
                context,
                processor,
                val_set,
                opts.eval_every,
                best_dir,
                opts.min_rouge_l,
                opts.early_stopping_patience,
            )
            callbacks.append(evaluator)
        trainer = SFTTrainer(
            model=model,
            args=sft_config(opts, workdir, steps),
            train_dataset=Dataset.from_dict({"idx": list(range(len(examples)))}),
            processing_class=processor,
            data_collator=collate,
            callbacks=callbacks,
        )
        trainer.remove_callback(PrinterCallback)  # the harness renders progress itself
        point_into(trainer, opts.report_to, workdir)
        if evaluator is not None:
            evaluator.log_to = trainer.log  # validation metrics beside the loss (eval/*)
        # TRL casts every trainable weight of a 4-bit model to bf16. Fully trained copies
        # (train_embeddings) must keep the fp32 of the prepared model's norms: evaluation runs
        # without autocast, and an fp32 hidden state cannot meet a bf16 lm_head.
        if opts.load_in_4bit:
            for name, param in model.named_parameters():
                if param.requires_grad and "modules_to_save" in name:
                    param.data = param.data.float()
        t0 = time.perf_counter()
        with tracking_env(opts.report_to, workdir):
            trainer.train()
        seconds = time.perf_counter() - t0
        history = progress.history
        model = trainer.model
        model.eval()
        adapter_dir: Path | None = workdir / "adapter"
        callback_summary: dict[str, Any] = {}
        if evaluator is not None:
            callback_summary = evaluator.summary()
            history.extend(evaluator.log)
            if opts.keep_best and evaluator.best_step is not None:
                set_peft_model_state_dict(model, load_peft_weights(str(best_dir)))
            elif evaluator.log and evaluator.log[-1]["val_rouge_l"] < opts.min_rouge_l:
                adapter_dir = None  # the gate also guards the final save
        if adapter_dir is not None:
            model.save_pretrained(str(adapter_dir), safe_serialization=True)
            follow_umask(adapter_dir)  # safetensors writes its weights 0600
        resolved = {  # what ran, read from the trained model where it can be
            "backend": backend,
            "backend_reason": reason,
            "target_modules": pattern if isinstance(pattern, list | dict) else {"regex": pattern},
            "n_target_modules": len(modules),
            "steps": steps,
            "steps_run": trainer.state.global_step,
            "peft": {k: bool(v) for k, v in self.peft_extra.items()},
            "load_in_4bit": quantization_of(model) is not None,
            "quantization": quantization_of(model),
            "precision": precision_name(opts),
            "base_dtype": base_dtype(model),
            "adapter_dtype": adapter_dtype(model),
            "gradient_checkpointing": checkpointing_on(model),
            "callbacks": callback_summary,
        }
        if adapter_dir is not None:
            write_card(
                adapter_dir,
                base_model=model_spec.resolved(),
                trainer=self.name,
                options=opts.model_dump(mode="json"),
                resolved=resolved,
            )
        return TrainResult(
            model=model,
            processor=processor,
            adapter_dir=adapter_dir,
            trainable_params=trainable,
            total_params=total,
            train_seconds=seconds,
            steps=trainer.state.global_step,
            resolved=resolved,
            history=history,
        )


class RsLoraTrainer(LoraTrainer):
    name = "rslora"
    description = "Rank-stabilised LoRA (alpha/sqrt(r) scaling), otherwise as lora."
    peft_extra = {"use_rslora": True}


class DoraTrainer(LoraTrainer):
    name = "dora"
    description = "Weight-decomposed LoRA (DoRA), otherwise as lora."
    peft_extra = {"use_dora": True}


class QLoraOptions(LoraOptions):
    """LoRA options whose base is always 4-bit, so the recorded options say what ran."""

    load_in_4bit: bool = Field(True, description="Always true: a bitsandbytes 4-bit base.")

    @field_validator("load_in_4bit")
    @classmethod
    def _always_4bit(cls, value: bool) -> bool:
        if not value:
            raise ValueError(
                "qlora always loads the base in 4-bit; for a full-precision base use trainer 'lora'"
            )
        return value


class QLoraTrainer(LoraTrainer):
    name = "qlora"
    description = "LoRA on a bitsandbytes 4-bit (NF4) base; needs a CUDA GPU."
    Options = QLoraOptions


@hookimpl
def register_trainers(register) -> None:  # noqa: ANN001
    for cls in (LoraTrainer, RsLoraTrainer, DoraTrainer, QLoraTrainer):
        register(cls)
