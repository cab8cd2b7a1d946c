"""The Unsloth backend (CUDA only): FastVisionModel, 4-bit, "unsloth" gradient checkpointing.

``load_unsloth`` imports unsloth only when ``resolve_backend`` picked this backend, so CPU
installs never import it. ``unsloth_cannot_honour`` lists the options this backend would drop;
``requirement_conflicts`` lists the installed packages whose versions the installed unsloth
declares it does not support (it then patches a library it was not written for).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from harness.core.errors import BackendUnavailableError
from harness.model.loading import ModelSpec, resolve_model_path
from harness.model.prompts import SYSTEM_PROMPT

# PEFT flags the unsloth call below passes through; any other (DoRA, a plugin's) would be dropped.
PASSED_PEFT_FLAGS = ("use_rslora",)


def unsloth_cannot_honour(opts: Any, peft_extra: dict[str, Any]) -> list[str]:
    """The options this backend would silently drop, named as the user sets them.

    ``FastVisionModel.get_peft_model`` builds its LoraConfig from r, alpha, dropout, bias, the
    target modules and use_rslora only: no DoRA, no ``modules_to_save`` (trainable embeddings).
    """
    dropped = [
        "DoRA (use_dora, the 'dora' trainer)" if flag == "use_dora" else f"PEFT flag {flag}"
        for flag, on in peft_extra.items()
        if on and flag not in PASSED_PEFT_FLAGS
    ]
    if opts.train_embeddings:
        dropped.append("trainer.train_embeddings=true")
    return dropped


def requirement_conflicts(
    requires: Iterable[str], installed: Callable[[str], str | None]
) -> list[str]:
    """Each requirement of ``requires`` (``Requires-Dist`` lines) that applies on this platform,
    whose distribution is installed, and whose installed version (``installed(name)``) it
    excludes, as ``"transformers<=5.17.0 (installed 5.23.0)"``. Extras are not looked at."""
    from packaging.requirements import InvalidRequirement, Requirement

    conflicts = []
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        version = installed(req.name)
        if (
            version is not None
            and req.specifier
            and not req.specifier.contains(version, prereleases=True)
        ):
            conflicts.append(f"{req.name}{req.specifier} (installed {version})")
    return conflicts


def unsloth_conflict() -> str | None:
    """Why the installed unsloth cannot be trusted here, or None (also when not installed)."""
    from importlib import metadata

    def installed(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    conflicts: list[str] = []
    for dist in ("unsloth", "unsloth_zoo"):
        if installed(dist) is None:
            continue
        for c in requirement_conflicts(metadata.requires(dist) or [], installed):
            if c not in conflicts:
                conflicts.append(c)
    if not conflicts:
        return None
    return (
        f"unsloth {installed('unsloth')} declares it does not support this environment: "
        + "; ".join(conflicts)
    )


def _check_peft_config(model: Any, opts: Any, peft_extra: dict[str, Any]) -> None:
    """The adapter unsloth built is the one the options asked for (its versions differ)."""
    config = model.peft_config["default"]
    asked = {
        "r": opts.r,
        "lora_alpha": opts.alpha,
        "lora_dropout": opts.dropout,
        "bias": opts.bias,
        "use_rslora": bool(peft_extra.get("use_rslora")),
        "use_dora": False,
    }
    for key, want in asked.items():
        got = getattr(config, key, want)
        if got != want:
            raise BackendUnavailableError(
                f"trainer.backend=unsloth built an adapter with {key}={got!r}, not {want!r} "
                "as the options ask; use trainer.backend=hf"
            )


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

    from harness.model.fastpath import apply_fast_paths
    from harness.model.processing import load_processor

    lo, hi = model_spec.pixels
    path = resolve_model_path(model_spec)
    # AutoProcessor (inside Unsloth) cannot build Qwen2.5-VL's processor without torchvision and
    # falls back to the tokenizer; the harness's image-only processor replaces it.
    processor = load_processor(path, model_spec.revision, lo, hi)
    import torch

    checkpointing = "unsloth" if opts.gradient_checkpointing else False
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    model, _tokenizer = FastVisionModel.from_pretrained(
        path,
        load_in_4bit=opts.load_in_4bit,
        dtype=dtypes.get(opts.precision),  # None (auto): bf16 where supported, else fp16
        use_gradient_checkpointing=checkpointing,
        revision=model_spec.revision,
    )
    apply_fast_paths(model)
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
        use_gradient_checkpointing=checkpointing,
    )
    _check_peft_config(model, opts, peft_extra)
    FastVisionModel.for_training(model, use_gradient_checkpointing=opts.gradient_checkpointing)
    if not opts.gradient_checkpointing:  # some unsloth versions switch it on for every module
        for module in model.modules():
            if getattr(module, "gradient_checkpointing", False) is True:
                module.gradient_checkpointing = False
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
    targets = list(opts.target_modules) if opts.target_modules else {"unsloth_groups": True}
    return model, processor, collate, targets, modules
