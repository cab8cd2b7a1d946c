"""The Unsloth backend (CUDA only): FastVisionModel, 4-bit, "unsloth" gradient checkpointing.

Imported only when ``resolve_backend`` picked it, so CPU installs never import unsloth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.errors import BackendUnavailableError
from harness.modeling import ModelSpec, resolve_model_path
from harness.prompts import SYSTEM_PROMPT


def load_unsloth(
    model_spec: ModelSpec, opts: Any, peft_extra: dict[str, Any]
) -> tuple[Any, Any, Callable[[list], dict], Any, list[str]]:
    """Return (peft model, processor, collate(examples), target description, modules)."""
    try:
        import unsloth  # noqa: F401  (must be imported before trl/transformers patches apply)
        from unsloth import FastVisionModel
        from unsloth.trainer import UnslothVisionDataCollator
    except Exception as exc:  # unsloth raises plain exceptions on unsupported setups
        raise BackendUnavailableError(f"trainer.backend=unsloth failed to import: {exc}") from exc

    from harness.processing import load_processor
    from harness.vision_attention import patch_vision_tower

    lo, hi = model_spec.pixels
    path = resolve_model_path(model_spec)
    # AutoProcessor (inside Unsloth) cannot build Qwen2.5-VL's processor without torchvision and
    # falls back to the tokenizer; the harness's image-only processor replaces it.
    processor = load_processor(path, model_spec.revision, lo, hi)
    model, _tokenizer = FastVisionModel.from_pretrained(
        path,
        load_in_4bit=opts.load_in_4bit,
        use_gradient_checkpointing="unsloth" if opts.gradient_checkpointing else False,
        revision=model_spec.revision,
    )
    patch_vision_tower(model)
    model = FastVisionModel.get_peft_model(
        model,
        finetune_vision_layers=opts.finetune_vision_layers,
        finetune_language_layers=opts.finetune_language_layers,
        finetune_attention_modules=opts.finetune_attention_modules,
        finetune_mlp_modules=opts.finetune_mlp_modules,
        target_modules=opts.target_modules,
        r=opts.r,
        lora_alpha=opts.alpha,
        lora_dropout=opts.dropout,
        bias=opts.bias,
        random_state=opts.seed,
        use_rslora=bool(peft_extra.get("use_rslora")),
    )
    FastVisionModel.for_training(model)
    collator = UnslothVisionDataCollator(
        model,
        processor,
        train_on_responses_only=True,  # completion-only loss, as in the hf backend
        instruction_part="<|im_start|>user\n",
        response_part="<|im_start|>assistant\n",
    )

    def collate(examples: list[tuple[Any, str, str]]) -> dict:
        rows = []
        for image, prompt, answer in examples:
            user: list[dict[str, Any]] = [{"type": "image", "image": image.convert("RGB")}]
            user.append({"type": "text", "text": prompt})
            rows.append(
                {
                    "messages": [
                        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
                        {"role": "user", "content": user},
                        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
                    ]
                }
            )
        return collator(rows)

    modules = sorted({n.rsplit(".", 2)[0] for n, _ in model.named_parameters() if "lora_A" in n})
    return model, processor, collate, {"unsloth_groups": True}, modules
