"""Does the Unsloth backend run here? Loads the random 3B architecture through the trainer plugin
with ``-o trainer.backend=unsloth`` and trains a few steps (device only; prints what happened)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    import torch

    t0 = time.perf_counter()
    try:
        import unsloth  # noqa: F401

        print(f"unsloth imported in {time.perf_counter() - t0:.1f}s")
    except Exception as exc:  # report exactly why, then stop
        print(f"UNSLOTH-IMPORT-FAILED: {type(exc).__name__}: {exc}")
        return
    from gpu_bench import samples, train_case
    from qwen3b import write_random_checkpoint

    from harness.model.loading import ModelSpec

    work = Path(tempfile.mkdtemp())
    ckpt = write_random_checkpoint(work / "ckpt")
    spec = ModelSpec(model=str(ckpt), min_pixels=448 * 448, max_pixels=448 * 448)
    opts = {
        "r": 16,
        "alpha": 16,
        "max_steps": 5,
        "batch_size": 2,
        "backend": "unsloth",
        "load_in_4bit": True,
        "gradient_checkpointing": True,
        "finetune_vision_layers": True,
    }
    try:
        row = train_case(spec, "rslora", opts, samples(16, 448), work / "run")
        print(f"UNSLOTH-TRAIN-OK {row} on {torch.cuda.get_device_name(0)}")
    except Exception as exc:
        import traceback

        traceback.print_exc()
        print(f"UNSLOTH-TRAIN-FAILED: {type(exc).__name__}: {str(exc)[:500]}")


if __name__ == "__main__":
    main()
