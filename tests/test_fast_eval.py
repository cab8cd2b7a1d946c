"""Fast evaluation paths on the tiny model (fp32, CPU): static-cache decoding gives the plain
path's greedy answers; likelihood scoring equals teacher-forced log-probabilities; a likelihood
bench writes classification metrics and no ROUGE-L anywhere."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cxr_harness_plugins.benchmarks.phantom8 import load_phantom8
from harness.cli import main
from harness.core.errors import BackendUnavailableError, OptionError
from harness.evaluation.generate import GenerationConfig, generate_answers
from harness.evaluation.likelihood import (
    ScoringError,
    label_continuations,
    label_loglikelihoods,
    tree_greedy_choice,
)
from harness.model.loading import ModelSpec, load_base
from harness.model.prompts import eval_prompt, format_answer
from harness.model.sft import render_prompt


@lru_cache(maxsize=1)
def _setup():
    torch.set_num_threads(1)
    model, processor = load_base(ModelSpec(), device="cpu")
    bench = load_phantom8()
    return model, processor, bench


def test_static_decoding_gives_the_plain_greedy_answers() -> None:
    model, processor, bench = _setup()
    samples = bench.test[::16][:10]
    classes = list(bench.classes)
    # two prompt lengths: exercises length bucketing, reordering and a padded last batch
    prompts = [eval_prompt(classes) if i % 2 else "Read this X-ray." for i in range(len(samples))]
    images = [s.image for s in samples]
    plain = generate_answers(model, processor, images, prompts, GenerationConfig(24, 4))
    static = generate_answers(
        model, processor, images, prompts, GenerationConfig(24, 4, decoding="static")
    )
    assert static == plain
    assert len(set(plain)) > 1  # the check compares real, varied text


def test_compiled_decoding_needs_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    model, processor, bench = _setup()
    with pytest.raises(BackendUnavailableError, match="CUDA"):
        generate_answers(
            model,
            processor,
            [bench.test[0].image],
            ["x"],
            GenerationConfig(4, 1, decoding="compiled"),
        )


def test_likelihoods_equal_teacher_forced_log_probs() -> None:
    model, processor, bench = _setup()
    classes = list(bench.classes)
    prompt = eval_prompt(classes)
    samples = bench.test[::40]
    got, _ = label_loglikelihoods(
        model, processor, [s.image for s in samples], [prompt] * len(samples), classes, 3
    )
    context = render_prompt(processor, prompt, True)
    shared, _ = label_continuations(processor.tokenizer, classes, context)
    for i, s in enumerate(samples):
        image = s.image.convert("RGB")
        n_ctx = processor(text=[context], images=[image], return_tensors="pt")["input_ids"].shape[1]
        for k, label in enumerate(classes):
            answer = format_answer(label, "").split("Explanation:")[0]
            enc = processor(text=[context + answer], images=[image], return_tensors="pt")
            with torch.no_grad():
                logp = torch.log_softmax(model(**enc).logits[0].double(), -1)
            ids = enc["input_ids"][0]
            want = sum(logp[j - 1, ids[j]].item() for j in range(n_ctx + len(shared), len(ids)))
            assert got[i, k] == pytest.approx(want, abs=1e-3)
    assert np.ptp(got, axis=1).min() > 0  # labels get different scores


def test_label_continuations_reject_ambiguous_labels() -> None:
    _, processor, _ = _setup()
    with pytest.raises(ScoringError):
        label_continuations(processor.tokenizer, [])
    with pytest.raises(ScoringError, match="same continuation"):
        label_continuations(processor.tokenizer, ["Normal", "normal"][:1] * 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"scoring": "beam"}, "--scoring"), ({"decoding": "fast"}, "--decoding")],
)
def test_generation_config_rejects_unknown_modes(kwargs: dict, match: str) -> None:
    with pytest.raises(OptionError, match=match):
        GenerationConfig(**kwargs)


def test_generation_config_hash_fields_only_when_not_default() -> None:
    assert "scoring" not in GenerationConfig().as_dict()
    assert GenerationConfig(scoring="likelihood").as_dict()["scoring"] == "likelihood"
    assert GenerationConfig(decoding="static").as_dict()["cache"] == "static"


def test_cli_rejects_likelihood_with_a_rouge_gate_and_compiled_on_cpu(tmp_path) -> None:
    runner = CliRunner()
    args = ["bench", "--trainer", "lora", "--out", str(tmp_path / "a"), "--scoring", "likelihood"]
    result = runner.invoke(main, [*args, "-o", "trainer.min_rouge_l=0.2"])
    assert result.exit_code == 2 and "min_rouge_l" in result.output
    if not torch.cuda.is_available():
        result = runner.invoke(main, ["bench", "--trainer", "base", "--decoding", "compiled"])
        assert result.exit_code == 2 and "CUDA" in result.output


def test_likelihood_bench_reports_no_rouge(tmp_path) -> None:
    out = tmp_path / "run"
    args = ["bench", "--trainer", "base", "--scoring", "likelihood", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output[-2000:]
    doc = json.loads((out / "results.json").read_text())
    (row,) = doc["results"]
    assert "rouge_l" not in row["metrics"]
    assert row["metrics"]["invalid_rate"] == 0.0  # every image gets a label
    assert doc["provenance"]["generation"]["scoring"] == "likelihood"
    table = (out / "leaderboard.md").read_text()
    line = next(x for x in table.splitlines() if x.startswith("| base"))
    assert line.split("|")[4].strip() == "–"  # the ROUGE-L column
    assert "ROUGE-L oracle" not in table
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    classes = set(_setup()[2].classes)
    assert len(preds) == 160 and all(set(p["scores"]) == classes for p in preds)
    # resume reuses the cached log-likelihoods and reproduces the metrics exactly
    again = CliRunner().invoke(main, [*args, "--resume"])
    assert again.exit_code == 0, again.output[-2000:]
    doc2 = json.loads((out / "results.json").read_text())
    assert doc2["results"][0]["metrics"] == row["metrics"]


def test_tree_greedy_choice_follows_the_most_probable_branch() -> None:
    # labels: A=[1, 5], B=[2], C=[1, 6]; first token 1 (A or C) beats 2 (B) although B's total
    # log-likelihood is the highest, exactly as free greedy decoding would go.
    rest = [[1, 5], [2], [1, 6]]
    logps = [[-0.9, -2.0], [-1.0], [-0.9, -0.2]]
    assert tree_greedy_choice(rest, logps) == 2
    assert tree_greedy_choice([[1], [2]], [[-0.5], [-0.5]]) == 0  # ties: the first label


def test_likelihood_scores_do_not_depend_on_batching_or_padding() -> None:
    """Prompts of different lengths in one batch (left padding, branch masks over padding)
    score as they do one at a time."""
    model, processor, bench = _setup()
    classes = list(bench.classes)
    samples = bench.test[::50]
    prompts = [eval_prompt(classes) + (" Be brief." if i % 2 else "") for i in range(len(samples))]
    images = [s.image for s in samples]
    alone = [
        label_loglikelihoods(model, processor, [im], [p], classes, 1)
        for im, p in zip(images, prompts, strict=True)
    ]
    together, chosen = label_loglikelihoods(
        model, processor, images, prompts, classes, len(samples)
    )
    np.testing.assert_allclose(together, np.concatenate([a[0] for a in alone]), atol=1e-4)
    assert (chosen == np.concatenate([a[1] for a in alone])).all()


def test_mrope_positions_equal_the_models_rope_index() -> None:
    from harness.model.fastpath.fast_pixels import encode_prompts_fast
    from harness.model.fastpath.mrope import mrope_positions
    from harness.model.processing import load_processor
    from harness.model.tiny import ensure_tiny_base

    model, _, bench = _setup()
    processor = load_processor(ensure_tiny_base(), min_pixels=56 * 56, max_pixels=140 * 140)
    images = [bench.test[0].image, bench.test[1].image.resize((84, 140)), bench.test[2].image]
    prompts = ["x", eval_prompt(list(bench.classes)), "a longer prompt than the first"]
    enc = encode_prompts_fast(processor, images, prompts, "cpu", with_positions=True)
    want, deltas = model.model.get_rope_index(
        enc["input_ids"],
        mm_token_type_ids=enc["mm_token_type_ids"],
        image_grid_thw=enc["image_grid_thw"],
        attention_mask=enc["attention_mask"],
    )
    assert enc["image_grid_thw"][1].tolist() != enc["image_grid_thw"][0].tolist()
    assert (enc["attention_mask"] == 0).any()  # left padding is exercised
    assert torch.equal(enc["position_ids"], want)
    _, got_deltas = mrope_positions(
        enc["input_ids"], enc["attention_mask"], enc["image_grid_thw"], processor.image_token_id, 2
    )
    assert got_deltas.tolist() == deltas.squeeze(1).tolist()


def test_fast_pixel_encoding_equals_the_processor() -> None:
    from harness.model.fastpath.fast_pixels import encode_prompts_fast
    from harness.model.sft import encode_prompts

    _, processor, bench = _setup()
    images = [
        bench.test[0].image,
        bench.test[1].image.resize((150, 130)),  # resized by the processor's own resize
        bench.test[2].image.convert("L"),
    ]
    prompts = ["a", "bb c", "x y z w"]
    want = encode_prompts(processor, images, prompts)
    got = encode_prompts_fast(processor, images, prompts, "cpu")
    assert set(got) == set(want)
    for key in ("input_ids", "attention_mask", "mm_token_type_ids", "image_grid_thw"):
        assert torch.equal(got[key], want[key]), key
    torch.testing.assert_close(got["pixel_values"], want["pixel_values"], rtol=0, atol=1e-6)


def test_rouge_is_not_reported_without_reference_reports() -> None:
    from harness.evaluation.generate import score

    _, _, bench = _setup()
    samples = [s.with_(report="") for s in bench.test[:4]]
    answers = [f"Class: {s.label}\nExplanation: clear lungs" for s in samples]
    result = score(samples, answers, bench.classes)
    assert "rouge_l" not in result.metrics and result.metrics["accuracy"] == 1.0
    assert "rouge_l" in score(bench.test[:4], answers, bench.classes).metrics


def test_option_on_an_optionless_component_names_the_fix(tmp_path) -> None:
    result = CliRunner().invoke(
        main, ["bench", "--trainer", "lora", "-o", "augmenter.max_deg=5", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "takes no options" in result.output and "--augmenter" in result.output


def test_compare_warns_when_runs_differ_beyond_the_recipe(tmp_path) -> None:
    runner = CliRunner()
    for name, scoring in (("gen", "generate"), ("lik", "likelihood")):
        args = ["bench", "--trainer", "base", "--scoring", scoring, "--out", str(tmp_path / name)]
        assert runner.invoke(main, args).exit_code == 0
    result = runner.invoke(main, ["compare", str(tmp_path / "gen"), str(tmp_path / "lik")])
    assert result.exit_code == 0, result.output[-2000:]
    text = " ".join(result.output.split())
    assert "warning: evaluation setting scoring differs: A generate vs B likelihood" in text


def test_eval_rejects_a_missing_adapter_and_compiled_on_cpu_before_loading() -> None:
    result = CliRunner().invoke(main, ["eval", "--adapter", "/no/such/adapter"])
    assert result.exit_code == 2 and "does not exist" in result.output
    if not torch.cuda.is_available():
        result = CliRunner().invoke(main, ["eval", "--decoding", "compiled"])
        assert result.exit_code == 2 and "CUDA" in result.output


def test_decoding_is_moot_under_likelihood_scoring() -> None:
    cfg = GenerationConfig(scoring="likelihood", decoding="compiled")
    assert cfg.decoding == "plain" and "cache" not in cfg.as_dict()


def test_likelihood_branch_mask_under_eager_attention_equals_sdpa() -> None:
    """The eager path gets the branch mask as an additive float mask: same scores."""
    model, processor, bench = _setup()
    classes = list(bench.classes)
    samples = bench.test[::80]
    prompts = [eval_prompt(classes) + (" Be brief." if i % 2 else "") for i in range(len(samples))]
    args = ([s.image for s in samples], prompts, classes, len(samples))
    sdpa, chosen = label_loglikelihoods(model, processor, *args)
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager"
    try:
        eager, chosen_eager = label_loglikelihoods(model, processor, *args)
    finally:
        model.set_attn_implementation("sdpa")
    np.testing.assert_allclose(eager, sdpa, atol=1e-4)
    assert (chosen == chosen_eager).all()
