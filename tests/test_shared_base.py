"""Adapters evaluated on the kept base (one compiled decoder for a grid): the answers are those of
the adapter loaded on its own base, and taking it off restores the base exactly.

Runs on the tiny model in fp32 on CPU with plain decoding; the compiled path that uses it is
exercised on the GPU by ``tests/test_gpu_suite.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cxr_harness_plugins.benchmarks.phantom8 import load_phantom8
from harness.evaluation.generate import GenerationConfig, generate_answers
from harness.model.adapters import load_with_adapter
from harness.model.loading import ModelSpec, load_base
from harness.model.prompts import eval_prompt
from harness.model.shared_base import SharedBase

SPEC = ModelSpec(model="tiny")


def _adapter(folder: Path, modules_to_save: bool = False) -> Path:
    from peft import LoraConfig, get_peft_model

    model, _ = load_base(SPEC)
    torch.manual_seed(0)
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj"],
        init_lora_weights=False,  # random B: the adapter really changes the answers
        modules_to_save=["lm_head"] if modules_to_save else None,
    )
    get_peft_model(model, config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    bench = load_phantom8()
    images = [s.image for s in bench.test[:6]]
    prompts = [eval_prompt(list(bench.classes))] * len(images)
    adapter = _adapter(tmp_path_factory.mktemp("adapter"))
    return images, prompts, adapter, tmp_path_factory


def _answers(model, processor, images, prompts) -> list[str]:
    gen = GenerationConfig(batch_size=3, max_new_tokens=24, decoding="plain")
    with torch.inference_mode():
        return generate_answers(model, processor, images, prompts, gen, lambda n=1: None)


def test_adapter_on_the_kept_base_answers_as_the_adapter_alone(setup) -> None:
    images, prompts, adapter, _ = setup
    alone, processor = load_with_adapter(SPEC, adapter)
    expected = _answers(alone, processor, images, prompts)
    base, processor = load_base(SPEC)
    before = _answers(base, processor, images, prompts)
    shared = SharedBase()
    shared.keep(base, "h")
    assert shared.serves(adapter, "h") and not shared.serves(adapter, "other-base")
    with shared.with_adapter(adapter) as model:
        assert _answers(model, processor, images, prompts) == expected
    assert expected != before  # the adapter changes the answers: the test has teeth


def test_taking_the_adapter_off_restores_the_base_exactly(setup) -> None:
    images, prompts, adapter, _ = setup
    base, processor = load_base(SPEC)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    params = {n: (p, p.requires_grad) for n, p in base.named_parameters()}
    tree = [(n, type(m).__name__) for n, m in base.named_modules()]
    answers = _answers(base, processor, images, prompts)
    shared = SharedBase()
    shared.keep(base, "h")
    for _ in range(2):  # twice: a second adapter finds the base as the first did
        with shared.with_adapter(adapter):
            pass
    assert [(n, type(m).__name__) for n, m in base.named_modules()] == tree
    after = base.state_dict()
    assert after.keys() == state.keys()
    assert all(torch.equal(after[k], v) for k, v in state.items())  # bit for bit
    assert {n: (p, p.requires_grad) for n, p in base.named_parameters()} == params
    assert not hasattr(base, "peft_config")
    assert _answers(base, processor, images, prompts) == answers


def test_what_is_not_shared(setup) -> None:
    _, _, adapter, factory = setup
    base, _ = load_base(SPEC)
    shared = SharedBase()
    assert not shared.serves(adapter, "h")  # nothing kept yet
    shared.keep(base, "h")
    assert not shared.serves(None, "h")
    embeddings = _adapter(factory.mktemp("mts"), modules_to_save=True)
    assert not shared.serves(embeddings, "h")  # trainable embeddings change the module tree
    four_bit = factory.mktemp("fourbit")
    for f in adapter.iterdir():
        (four_bit / f.name).write_bytes(f.read_bytes())
    from harness.model.adapters import CARD

    (four_bit / CARD).write_text(json.dumps({"base_load": {"load_in_4bit": True}}))
    assert not shared.serves(four_bit, "h")
    from peft import LoraConfig, get_peft_model

    wrapped = get_peft_model(load_base(SPEC)[0], LoraConfig(target_modules=["q_proj"]))
    other = SharedBase()
    other.keep(wrapped, "h")
    assert other.model is None  # a PEFT-wrapped model is never kept as the base


def test_a_run_under_compiled_decoding_shares_the_kept_base(setup) -> None:
    """The decision `run_configuration` makes: compiled generation of a trained adapter of the
    kept base shares it; other decodings, scorings, bases and untrained rows do not."""
    from harness.evaluation.generate import GenerationConfig
    from harness.execution.configuration import shares_base

    _, _, adapter, _ = setup
    base, _ = load_base(SPEC)
    shared = SharedBase()
    shared.keep(base, "h")
    compiled = GenerationConfig(decoding="compiled")
    assert shares_base(shared, compiled, trains=True, adapter_dir=adapter, base_hash="h")
    for gen in (
        GenerationConfig(decoding="plain"),
        GenerationConfig(decoding="static"),
        GenerationConfig(decoding="compiled", scoring="both"),
        GenerationConfig(scoring="likelihood"),
    ):
        assert not shares_base(shared, gen, trains=True, adapter_dir=adapter, base_hash="h")
    assert not shares_base(shared, compiled, trains=False, adapter_dir=adapter, base_hash="h")
    assert not shares_base(shared, compiled, trains=True, adapter_dir=adapter, base_hash="x")
    assert not shares_base(None, compiled, trains=True, adapter_dir=adapter, base_hash="h")
