"""GPU fast paths for Qwen2.5-VL, each equal to the stock computation up to float rounding.

- `vision_attention`: the vision tower's window attention as one batched call per layer;
- `patch_embed`: the patch embedding as one matrix product instead of a Conv3d;
- `vision_mlp`: the vision MLP padded to GEMM-friendly widths where no gradient is taken;
- `decode_attention`: grouped-query attention kept packed in compiled one-token decode steps;
- `fast_pixels`: generation inputs with the pixel arithmetic done on the model's device;
- `mrope`: the 3-D rotary positions computed on the CPU;
- `patching`: binding a replacement forward to module instances;
- `compat`: the gate in front of them (supported transformers range, ``CXR_HARNESS_*=stock``
  switches) and the record of what applied, `applied_fast_paths(model)`.

Nothing here imports the rest of the harness except `harness.core.errors` and `harness.model.sft`
(the
chat template `fast_pixels` renders); the harness reaches the patches only through `compat`.
"""

from harness.model.fastpath.compat import SUPPORTED, applied_fast_paths, apply_fast_paths

__all__ = ["SUPPORTED", "applied_fast_paths", "apply_fast_paths"]
