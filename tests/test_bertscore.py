"""BERTScore as an optional model-based metric: with weights present it runs (tested on a tiny
randomly initialised BERT and a tokenizer built here); without them the plan fails before any
work with an error naming the missing weights."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cxr_harness_plugins.metrics.bertscore import MissingWeightsError
from harness.cli import main
from harness.components import MetricItem
from harness.plan import make_plan
from harness.plugins import make_registry
from harness.spec import BenchSpec

WORDS = "the heart is enlarged no pleural effusion seen lungs are clear mild small left right"


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS.split()]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(out / "vocab.txt")).save_pretrained(out)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(out)
    return out


def item(hyp: str, ref: str) -> MetricItem:
    return MetricItem("0", "a", "a", hyp, ref)


def test_bertscore_runs_on_local_weights(tiny_encoder: Path) -> None:
    m = make_registry().create("metric", "bertscore", {"model": str(tiny_encoder), "layer": 2})
    m.preflight()
    same = "the heart is enlarged"
    got = m.scores([item(same, same), item("lungs are clear", same), item(same, "")])
    assert got[0] == pytest.approx(1.0)  # every token matches itself
    assert -1.0 <= got[1] < 0.999  # other words: a lower score
    # F is symmetric in explanation and reference (precision and recall swap)
    back = m.scores([item(same, "lungs are clear")])[0]
    assert back == pytest.approx(got[1])
    column = m.column()
    assert column.name == "bertscore" and "layer 2" in column.version
    assert str(tiny_encoder) in column.tokenisation


def test_missing_weights_fail_at_plan_time_naming_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = "no-such-org/no-such-encoder"
    spec = BenchSpec(
        trainers=("base",),
        metrics=("macro_f1", "bertscore"),
        component_options={"metric": {"bertscore": {"model": missing}}},
        out=tmp_path / "o",
    )
    with pytest.raises(MissingWeightsError, match=missing):
        make_plan(spec, make_registry())
    assert not (tmp_path / "o").exists()  # no work started
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = BenchSpec(
        trainers=("base",),
        metrics=("bertscore",),
        component_options={"metric": {"bertscore": {"model": str(empty)}}},
        out=tmp_path / "o",
    )
    with pytest.raises(MissingWeightsError, match="config.json"):
        make_plan(bad, make_registry())


def test_the_cli_exits_2_naming_the_weights_and_the_option(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = tmp_path / "exp.toml"
    config.write_text(
        'trainers = ["base"]\nmetrics = ["macro_f1", "bertscore"]\n'
        '[options.metric.bertscore]\nmodel = "no-such-org/no-such-encoder"\n'
    )
    res = CliRunner().invoke(main, ["bench", "--config", str(config), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert "no-such-org/no-such-encoder" in res.output and "options.metric.bertscore" in res.output
    stray = tmp_path / "stray.toml"
    stray.write_text('trainers = ["base"]\n[options.metric.bertscore]\nmodel = "x"\n')
    res = CliRunner().invoke(main, ["bench", "--config", str(stray), "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "not chosen with --metric" in res.output
