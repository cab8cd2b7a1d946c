"""A small byte-level BPE tokenizer for the tiny Qwen2.5-VL, with Qwen's special tokens.

The vocabulary is trained locally on a fixed corpus: the radiology prose of this module, every
class name (underscore and spaced forms), the benchmark's eval prompt and whatever extra texts the
caller passes (phantom reports and descriptions). The pre-tokenizer, normalizer and decoder are
exactly Qwen2's, so the saved tokenizer loads as a plain `Qwen2Tokenizer`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer
from transformers import PreTrainedTokenizerBase, Qwen2Tokenizer

from harness.data.labels import ALL_CLASSES, PHANTOM8_CLASSES
from harness.model.prompts import SYSTEM_PROMPT, eval_prompt

# Qwen2's pre-tokenization regex (transformers.models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX).
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen2.5-VL's special tokens, in Qwen's order; they take ids 0..12 here.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# ChatML like Qwen2.5-VL's: an image item renders as <|vision_start|><|image_pad|><|vision_end|>.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# What each category means, in plain report language (several phrasings each).
CATEGORY_PROSE: dict[str, tuple[str, ...]] = {
    "Normal": (
        "The lungs are clear and the heart size is within normal limits.",
        "No focal consolidation, effusion or pneumothorax is seen.",
        "Both lung fields are symmetric and well expanded.",
    ),
    "Inflammatory_Pneumonia": (
        "There is patchy airspace consolidation with air bronchograms.",
        "Ill-defined opacities suggest an inflammatory or infective process.",
        "Consolidation is seen, in keeping with pneumonia.",
    ),
    "Higher_Density": (
        "A region of increased density is present within the lung.",
        "There is a dense, well-defined opacity.",
        "The affected zone appears brighter than the surrounding lung.",
    ),
    "Lower_Density": (
        "A region of decreased density is present, with reduced lung markings.",
        "There is a lucent area suggesting hyperinflation or a bulla.",
        "The affected zone appears darker than the surrounding lung.",
    ),
    "Obstructive": (
        "There is volume loss with shift toward the affected side.",
        "Findings suggest collapse due to airway obstruction.",
        "A segment of lung is collapsed and the fissure is displaced.",
    ),
    "Degenerative_Infectious": (
        "There are chronic fibrotic and nodular changes.",
        "Scarring and small nodules suggest an old or chronic infection.",
        "Reticular markings and cavitation are noted in the upper zone.",
    ),
    "Mediastinal_Changes": (
        "The mediastinum is widened.",
        "The cardiac silhouette is enlarged and the hila are prominent.",
        "There is a mediastinal contour abnormality.",
    ),
    "Chest_Changes": (
        "There are changes of the chest wall and the bony thorax.",
        "Rib deformity and pleural thickening are noted.",
        "The chest wall contour is abnormal.",
    ),
    "Encapsulated_Lesions": (
        "There is a well-circumscribed rounded lesion.",
        "A loculated collection with a defined wall is seen.",
        "An encapsulated mass is present.",
    ),
}

GENERIC_PROSE: tuple[str, ...] = (
    "The trachea is central.",
    "The heart size is normal.",
    "The costophrenic angles are sharp.",
    "The hemidiaphragms are smooth.",
    "There is no pleural effusion.",
    "There is no pneumothorax.",
    "The bones are unremarkable.",
    "The image quality is adequate.",
    "The film is slightly rotated.",
    "The exposure is low and the image is noisy.",
    "The exposure is high and the image is bright.",
    "The image is blurred.",
    "The contrast is reduced.",
    "The finding is in the left upper zone.",
    "The finding is in the right lower zone.",
    "The left middle zone and the right middle zone are compared.",
    "Compared with the prior study, there is no significant change.",
    "Clinical correlation is recommended.",
    "A follow-up radiograph is advised.",
    "Frontal view of the chest.",
    "The left lung and the right lung are both visible.",
    "The upper, middle and lower zones are assessed on both sides.",
    "The opacity is small, medium or large.",
    "Impression: no acute cardiopulmonary abnormality.",
)

CATEGORY_FRAMES: tuple[str, ...] = (
    "The category {name} describes the following: {prose}",
    "In a report labelled {name}, one may read: {prose}",
    "{prose} Such a film is filed under {name}.",
    "{name}: {prose}",
    "Typical wording for {spaced}: {prose}",
    "{prose} This pattern belongs to {spaced}.",
)


def spaced(label: str) -> str:
    return label.replace("_", " ")


def category_sentence(rng: random.Random, label: str) -> str:
    """One prose sentence that names a category (text-only pre-training and the BPE corpus)."""
    frame = rng.choice(CATEGORY_FRAMES)
    return frame.format(name=label, spaced=spaced(label), prose=rng.choice(CATEGORY_PROSE[label]))


def report_paragraph(rng: random.Random) -> str:
    """A short synthetic report paragraph mixing generic and category prose."""
    parts = rng.sample(GENERIC_PROSE, k=rng.randint(1, 3))
    labels = rng.sample(ALL_CLASSES, k=rng.randint(1, 2))
    parts += [category_sentence(rng, label) for label in labels]
    rng.shuffle(parts)
    if rng.random() < 0.3:
        parts.append("The categories are " + ", ".join(rng.sample(ALL_CLASSES, k=4)) + ".")
    return " ".join(parts)


def base_corpus(seed: int = 0, n_paragraphs: int = 3000) -> list[str]:
    """The fixed corpus that does not depend on phantoms."""
    rng = random.Random(seed)
    texts = [SYSTEM_PROMPT, eval_prompt(PHANTOM8_CLASSES), eval_prompt(ALL_CLASSES)] * 20
    texts += [f"<|im_start|>{role}\n" for role in ("system", "user", "assistant")] * 50
    texts += [" ".join(v) for v in CATEGORY_PROSE.values()] + list(GENERIC_PROSE)
    # Class names, often and in both forms, so each becomes one or two tokens.
    for label in ALL_CLASSES:
        texts += [f"Class: {label}", label, spaced(label), f" {label}", f" {spaced(label)}"] * 40
    texts += [report_paragraph(rng) for _ in range(n_paragraphs)]
    return texts


def train_tokenizer(extra_texts: Iterable[str] = (), vocab_size: int = 2048) -> Tokenizer:
    """Train the raw `tokenizers` BPE (deterministic for a fixed corpus)."""
    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(base_corpus() + list(extra_texts), trainer=trainer)
    return tok


def build_tokenizer(extra_texts: Iterable[str] = (), vocab_size: int = 2048) -> Qwen2Tokenizer:
    """A transformers `Qwen2Tokenizer` over a freshly trained vocabulary, with the chat template."""
    raw = train_tokenizer(extra_texts, vocab_size)
    merges = json.loads(raw.to_str())["model"]["merges"]
    tok = Qwen2Tokenizer(
        vocab=raw.get_vocab(),
        merges=[tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges],
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<|im_end|>",)],
        model_max_length=4096,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )
    return tok


def class_token_counts(tok: PreTrainedTokenizerBase) -> dict[str, int]:
    """How many tokens each class name takes after 'Class: ' (lower is easier to learn)."""
    base = len(tok("Class:")["input_ids"])
    return {c: len(tok(f"Class: {c}")["input_ids"]) - base for c in ALL_CLASSES}
