"""Deterministic generic pre-training of the tiny Qwen2.5-VL base (rebuilds
harness/model/tiny/assets).

Full-parameter AdamW on a mix of text-only radiology prose (which names the categories, so the
model can produce those words) and phantom images that the model describes either for technical
quality or anatomically. No image answer names a class or uses the `Class:` answer format, all
user prompts differ from the eval prompt, and every phantom seed is drawn through
derive_seed("pretrain", ...), so no pre-training image coincides with a benchmark image.
A quality gate on held-out pre-training images must pass before anything is saved.

Rebuild: python -m harness.model.tiny.pretrain
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

from harness.core.errors import ModelError
from harness.core.rng import derive_seed
from harness.data.labels import PHANTOM8_CLASSES
from harness.data.phantom_text import describe_anatomy, describe_quality
from harness.data.phantoms import Phantom, render_phantom
from harness.model.processing import ImageOnlyQwen2_5_VLProcessor
from harness.model.sft import Example, collate_sft, encode_prompts
from harness.model.tiny import config as tc
from harness.model.tiny.tokenizer import (
    build_tokenizer,
    category_sentence,
    report_paragraph,
    spaced,
)

SEED = 20250101
STEPS = 1500
BATCH = 8
LR = 2e-3
WARMUP = 100
TEXT_EVERY = 3  # every third batch is text-only
POOL_PER_CLASS = 300  # 2,400 distinct pre-training phantoms
GATE_IMAGES = 48
GATE_MIN_TOKEN_ACC = 0.85
GATE_MIN_SIGN_ACC = 0.6
REBUILD_COMMAND = "python -m harness.model.tiny.pretrain"

QUALITY_PROMPTS: tuple[str, ...] = (
    "Comment on the technical quality of this film.",
    "How is the exposure and positioning of this radiograph?",
    "Assess the image quality.",
    "Is this film well exposed and centred?",
)
ANATOMY_PROMPTS: tuple[str, ...] = (
    "Describe what is drawn in this image.",
    "Describe the lungs, heart and diaphragm in this image.",
    "What do you see on this radiograph?",
    "Give a plain description of this chest image.",
)
TEXT_PROMPTS: tuple[str, ...] = (
    "Write a few sentences of a chest radiograph report.",
    "Write a short radiology paragraph.",
    "Tell me about chest X-ray categories.",
)


def _label_form(rng: random.Random, label: str) -> str:
    return label if rng.random() < 0.5 else spaced(label)


Pool = dict[str, list[Phantom]]


def phantom_pool(tag: str, per_class: int) -> Pool:
    """Pre-rendered phantoms, seeds derive_seed("pretrain", tag, label, i)."""
    return {
        label: [
            render_phantom(label, derive_seed("pretrain", tag, label, i)) for i in range(per_class)
        ]
        for label in PHANTOM8_CLASSES
    }


def text_example(rng: random.Random, pool: Pool) -> Example:
    """A text-only example: prose that names categories (no image, no `Class:` format)."""
    kind = rng.random()
    if kind < 0.4:
        return None, rng.choice(TEXT_PROMPTS), report_paragraph(rng)
    label = rng.choice(PHANTOM8_CLASSES)
    report = rng.choice(pool[label]).report
    if kind < 0.7:
        prompt = f"Write an example report for the category {_label_form(rng, label)}."
        return None, prompt, report
    if kind < 0.9:
        prompt = f"Which category fits this report? {report}"
        return None, prompt, f"This report fits the category {_label_form(rng, label)}."
    prompt = f"What does the category {_label_form(rng, label)} mean?"
    return None, prompt, category_sentence(rng, label)


def image_example(rng: random.Random, pool: Pool, anatomy: bool | None = None) -> Example:
    """A phantom image with a quality or an anatomy description (never a class name)."""
    phantom = rng.choice(pool[rng.choice(PHANTOM8_CLASSES)])
    if anatomy is None:
        anatomy = rng.random() < 0.75
    if anatomy:
        return phantom.image, rng.choice(ANATOMY_PROMPTS), describe_anatomy(phantom.findings)
    return phantom.image, rng.choice(QUALITY_PROMPTS), describe_quality(phantom.findings)


def tokenizer_texts() -> list[str]:
    """Phantom reports/descriptions and the pre-training prompts for the BPE corpus."""
    texts = list(QUALITY_PROMPTS + ANATOMY_PROMPTS + TEXT_PROMPTS) * 10
    for label in PHANTOM8_CLASSES:
        for i in range(40):
            ph = render_phantom(label, derive_seed("pretrain", "tokenizer", label, i))
            texts += [ph.report, describe_anatomy(ph.findings), describe_quality(ph.findings)]
    return texts


def build_processor() -> ImageOnlyQwen2_5_VLProcessor:
    tokenizer = build_tokenizer(tokenizer_texts(), vocab_size=tc.VOCAB_SIZE)
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=tc.IMAGE_PIXELS,
        max_pixels=tc.IMAGE_PIXELS,
        patch_size=tc.PATCH_SIZE,
        merge_size=tc.SPATIAL_MERGE,
        temporal_patch_size=2,
    )
    return ImageOnlyQwen2_5_VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _lr_at(step: int, steps: int) -> float:
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, steps - WARMUP)
    return LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _gate_examples() -> list[tuple[Example, str]]:
    """Anatomy examples of held-out pre-training phantoms, with each one's sign sentence."""
    pool = phantom_pool("gate", GATE_IMAGES // len(PHANTOM8_CLASSES))
    rng = random.Random(SEED + 1)
    out = []
    for label in PHANTOM8_CLASSES:
        for phantom in pool[label]:
            answer = describe_anatomy(phantom.findings)
            example = (phantom.image, rng.choice(ANATOMY_PROMPTS), answer)
            out.append((example, answer.split(". ")[-1].strip()))
    return out


@torch.no_grad()
def quality_gate(model: Any, processor: Any) -> dict[str, float]:
    """Held-out pre-training images (never benchmark images): anatomy-description fidelity.

    token_acc: teacher-forced next-token accuracy over the descriptions;
    sign_acc: share of greedy descriptions whose sentence about the drawn sign is exact.
    """
    model.eval()
    gate = _gate_examples()
    examples = [ex for ex, _ in gate]
    correct = total = 0
    for i in range(0, len(examples), 16):
        batch = collate_sft(processor, examples[i : i + 16])
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        pred, gold = logits[:, :-1].argmax(-1), batch["labels"][:, 1:]
        mask = gold != -100
        correct += int((pred[mask] == gold[mask]).sum())
        total += int(mask.sum())
    hits = 0
    for i in range(0, len(gate), 16):
        chunk = gate[i : i + 16]
        enc = encode_prompts(processor, [ex[0] for ex, _ in chunk], [ex[1] for ex, _ in chunk])
        out = model.generate(**enc, max_new_tokens=96, do_sample=False)
        texts = processor.batch_decode(
            out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True
        )
        hits += sum(sign in text for text, (_, sign) in zip(texts, chunk, strict=True))
    return {"token_acc": correct / max(1, total), "sign_acc": hits / len(gate)}


def pretrain(
    out_dir: Path,
    steps: int = STEPS,
    seed: int = SEED,
    threads: int = 1,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build tokenizer/processor, pre-train, gate, and save everything to `out_dir`."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _pretrain(Path(out_dir), steps, seed, threads, log or (lambda _msg: None))
    finally:
        torch.set_num_threads(previous_threads)


def _pretrain(
    out_dir: Path, steps: int, seed: int, threads: int, log: Callable[[str], None]
) -> dict[str, Any]:
    started = time.time()
    seed_everything(seed)
    processor = build_processor()
    vocab = 64 * math.ceil(len(processor.tokenizer) / 64)
    model = Qwen2_5_VLForConditionalGeneration(tc.tiny_config(vocab_size=vocab))
    model.generation_config = tc.tiny_generation_config()
    n_params = sum(p.numel() for p in model.parameters())
    log(f"tokenizer {len(processor.tokenizer)} tokens, model {n_params} parameters")
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.98), weight_decay=0.01)
    rng = random.Random(seed)
    pool = phantom_pool(f"train-{seed}", POOL_PER_CLASS)
    log(f"rendered {POOL_PER_CLASS * len(PHANTOM8_CLASSES)} phantoms, {time.time() - started:.0f}s")
    model.train()
    train_started = time.time()
    for step in range(steps):
        if step % TEXT_EVERY == TEXT_EVERY - 1:
            examples = [text_example(rng, pool) for _ in range(BATCH)]
        else:
            examples = [image_example(rng, pool) for _ in range(BATCH)]
        batch = collate_sft(processor, examples)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, steps)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step:5d}  loss {loss.item():.3f}  {time.time() - train_started:.0f}s")
    train_seconds = time.time() - train_started
    gate = quality_gate(model, processor)
    log(f"gate {gate}")
    if gate["token_acc"] < GATE_MIN_TOKEN_ACC or gate["sign_acc"] < GATE_MIN_SIGN_ACC:
        raise ModelError(
            f"Tiny base failed its quality gate: {gate} (need token_acc >= "
            f"{GATE_MIN_TOKEN_ACC}, sign_acc >= {GATE_MIN_SIGN_ACC}); nothing was saved"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    processor.image_processor.save_pretrained(out_dir)
    record = _provenance(seed, steps, threads, n_params, vocab, train_seconds, started, gate)
    (out_dir / "PRETRAIN.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _provenance(
    seed: int,
    steps: int,
    threads: int,
    n_params: int,
    vocab: int,
    train_seconds: float,
    started: float,
    gate: dict[str, float],
) -> dict[str, Any]:
    import peft
    import tokenizers
    import transformers

    return {
        "command": REBUILD_COMMAND,
        "seed": seed,
        "steps": steps,
        "batch_size": BATCH,
        "lr": LR,
        "warmup": WARMUP,
        "text_batch_every": TEXT_EVERY,
        "torch_threads": threads,
        "parameters": n_params,
        "vocab_size": vocab,
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - started, 1),
        "gate": {k: round(v, 4) for k, v in gate.items()},
        "gate_thresholds": {"token_acc": GATE_MIN_TOKEN_ACC, "sign_acc": GATE_MIN_SIGN_ACC},
        "gate_images": GATE_IMAGES,
        "pool_per_class": POOL_PER_CLASS,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "peft": peft.__version__,
            "numpy": np.__version__,
        },
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    from harness.model.tiny import TINY_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TINY_DIR)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    record = pretrain(args.out, args.steps, args.seed, args.threads, log=print)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
