"""The TRL ``SFTConfig`` a LoRA-family configuration trains with, and its step count."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cxr_harness_plugins.trainers.backends import precision_flags
from cxr_harness_plugins.trainers.tracking import report_to_list


def total_steps(opts: Any, n_examples: int) -> int:
    per_epoch = math.ceil(n_examples / (opts.batch_size * opts.grad_accum))
    return opts.max_steps or max(1, math.ceil(per_epoch * opts.epochs))


def sft_config(opts: Any, workdir: Path, steps: int, **extra: Any) -> Any:
    import torch
    from trl import SFTConfig

    bf16, fp16 = precision_flags(opts)
    return SFTConfig(
        output_dir=str(workdir / "trainer"),
        max_steps=steps,
        per_device_train_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        learning_rate=opts.lr,
        warmup_steps=int(opts.warmup_ratio * steps),
        weight_decay=opts.weight_decay,
        lr_scheduler_type=opts.scheduler,
        seed=opts.seed,
        data_seed=opts.seed,
        bf16=bf16,
        fp16=fp16,
        use_cpu=not torch.cuda.is_available(),
        activation_checkpointing=opts.gradient_checkpointing,
        logging_steps=max(1, steps // 20),
        save_strategy="no",
        report_to=report_to_list(opts.report_to),
        run_name=workdir.name,
        disable_tqdm=True,
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        # on a GPU, two worker processes collate (CPU image processing, ~150 ms per batch of 8
        # at 448 px) while the GPU trains; on a CPU they would only compete for its cores
        dataloader_num_workers=2 if torch.cuda.is_available() else 0,
        **extra,
    )
