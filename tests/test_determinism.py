"""Determinism guard of the evaluation runner: greedy answers do not depend on the batch size.

``harness.evaluation.generate.generate_answers`` batches with left padding; a wrong attention mask
or
position ids for padded rows would change a row's answer with its neighbours. Rows here get
prompts of different lengths, so every batch mixes several padding lengths.
"""

from __future__ import annotations

import pytest
import torch

from harness.core.rng import derive_seed
from harness.data.labels import PHANTOM8_CLASSES
from harness.data.phantoms import render_phantom
from harness.evaluation.generate import GenerationConfig, generate_answers
from harness.model.loading import ModelSpec, load_base
from harness.model.prompts import eval_prompt

N_IMAGES = 16
PROMPTS = (
    eval_prompt(PHANTOM8_CLASSES),
    "Assess the image quality.",
    "Describe the lungs, heart and diaphragm in this image.",
    "Describe what is drawn in this image.",
    "Is there anything abnormal?",
    eval_prompt(PHANTOM8_CLASSES) + " Answer briefly.",
    "Describe the image.",
)


@pytest.fixture(scope="module")
def tiny():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, processor = load_base(ModelSpec(model="tiny", dtype="float32"), device="cpu")
        assert next(model.parameters()).dtype == torch.float32
        yield model, processor
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def rows():
    images = [
        render_phantom(PHANTOM8_CLASSES[i % 8], derive_seed("test-determinism", i)).image
        for i in range(N_IMAGES)
    ]
    prompts = [PROMPTS[(i * 3) % len(PROMPTS)] for i in range(N_IMAGES)]
    return images, prompts


def _answers(tiny, rows, batch_size: int) -> list[str]:
    model, processor = tiny
    images, prompts = rows
    calls: list[int] = []
    config = GenerationConfig(max_new_tokens=48, batch_size=batch_size)
    out = generate_answers(model, processor, images, prompts, config, calls.append)
    assert sum(calls) == len(images)
    assert len(calls) == -(-len(images) // batch_size)  # one progress call per batch
    return out


def test_rows_use_several_prompt_lengths(tiny, rows):
    _, processor = tiny
    tokenizer = processor.tokenizer
    lengths = {len(tokenizer(p)["input_ids"]) for p in rows[1]}
    assert len(lengths) >= 4  # every batch of 5 or 16 mixes left-padding lengths


def test_greedy_answers_do_not_depend_on_batch_size(tiny, rows):
    single = _answers(tiny, rows, 1)
    assert len(single) == N_IMAGES and all(isinstance(a, str) for a in single)
    assert len(set(single)) > 1, single  # the rows are not all alike: the test can see a swap
    for batch_size in (5, 16):  # 16 = one batch; 5 = uneven batches (5, 5, 5, 1)
        assert _answers(tiny, rows, batch_size) == single, f"batch_size={batch_size}"


def test_greedy_answers_are_repeatable(tiny, rows):
    assert _answers(tiny, rows, 16) == _answers(tiny, rows, 16)
