"""The GPU user's path, end to end on the real Qwen2.5-VL-3B architecture (random weights,
``perf/qwen3b.py``): ``harness bench`` trains every LoRA-family trainer on both backends for a
few steps, ``harness eval --adapter`` reproduces each run's answers and metrics exactly, a
combination that cannot run is refused before any work, and the compiled decoder and the merged
adapter give the plain path's logits within a stated tolerance.

Marked ``gpu``: skipped without a CUDA GPU (``tests/conftest.py``). Set
``CXR_HARNESS_GPU_MODEL`` to an existing checkpoint folder to skip writing one.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

STEPS = "3"
NEW_TOKENS = "16"
# bf16 logits of two exact-in-real-arithmetic paths differ by rounding only. The stated tolerance,
# on max |Δlogit| / max |logit| at every step before the greedy tokens first differ: the larger of
# 0.03 and twice the bf16 floor measured on the same inputs in the same test (the plain path
# itself, batch 8 vs batch 1 of the same row: other GEMM shapes, other kernels, other rounding).
# On random weights the logits are near-uniform (small max |logit|), which makes 0.03 strict.
LOGIT_TOLERANCE = 0.03
FLOOR_FACTOR = 2.0


def _tolerance(floor: float) -> float:
    return max(LOGIT_TOLERANCE, FLOOR_FACTOR * floor)


def _unsloth_problem() -> str | None:
    """Why unsloth cannot train here (imports it, which patches transformers: call it last)."""
    if importlib.util.find_spec("unsloth") is None:
        return "unsloth is not installed"
    try:
        import unsloth  # noqa: F401
    except Exception as exc:  # report why the backend cannot run here
        return f"unsloth failed to import: {type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("CXR_HARNESS_GPU_MODEL")
    if given and (Path(given) / "config.json").is_file():
        return Path(given)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "perf"))
    from qwen3b import write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp("qwen3b"))


def _cli(args: list[str]) -> tuple[int, str]:
    from click.testing import CliRunner

    from harness.cli import main

    result = CliRunner().invoke(main, args)
    gc.collect()
    import torch

    torch.cuda.empty_cache()
    return result.exit_code, result.output + (
        "" if result.exception is None or result.exit_code in (0, 2) else repr(result.exception)
    )


def _predictions(out: Path) -> dict[str, list[str]]:
    by_config: dict[str, list[str]] = {}
    for line in (out / "predictions.jsonl").read_text().splitlines():
        p = json.loads(line)
        by_config.setdefault(p["config_id"], []).append(p["answer"])
    return by_config


def _logit_gap(model, processor, image, prompt, compiled: bool, steps: int = 16):
    """Greedy logits of plain generate vs the static/compiled path, on identical inputs."""
    import torch
    from transformers import CompileConfig

    from harness.model.decoding import PAD_MULTIPLE, _pad_left
    from harness.model.fastpath.decode_attention import decode_attention
    from harness.model.fastpath.fast_pixels import encode_prompts_fast

    tokenizer = processor.tokenizer
    device = next(model.parameters()).device
    inputs = _pad_left(
        encode_prompts_fast(processor, [image] * 8, [prompt] * 8, device),
        PAD_MULTIPLE,
        tokenizer.pad_token_id,
    )
    common = {
        "max_new_tokens": steps,
        "do_sample": False,
        "pad_token_id": tokenizer.pad_token_id,
        "return_dict_in_generate": True,
        "output_logits": True,
    }
    with torch.inference_mode():
        plain = model.generate(**inputs, **common)
        single = model.generate(**_first_row(inputs), **common)
        extra = {"cache_implementation": "static", "disable_compile": not compiled}
        if compiled:
            extra["compile_config"] = CompileConfig(fullgraph=False, dynamic=False)
        with decode_attention(model):
            fast = model.generate(**inputs, **common, **extra)
    gap, agree = _compare(plain, fast)
    floor, _ = _compare(plain, single)
    return gap, agree, floor


def _first_row(inputs) -> dict:
    """The same batch cut to its first row (every row of these batches is the same prompt)."""
    import torch

    cut = {}
    for key, value in inputs.items():
        if key == "pixel_values":  # patches of 8 equal images, concatenated
            value = value[: value.shape[0] // 8]
        elif key == "image_grid_thw":
            value = value[:1]
        elif isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == 8:
            value = value[:1]
        cut[key] = value
    return cut


def _compare(a, b) -> tuple[float, int]:
    """(max |Δlogit| / max |logit| over the steps before the first differing token, steps).
    When ``b`` holds fewer rows than ``a``, ``a``'s first rows are compared with them."""

    n = len(a.logits)
    rows = b.sequences.shape[0]
    tokens_a, tokens_b = a.sequences[:rows, -n:], b.sequences[:, -n:]
    same = (tokens_a == tokens_b).all(dim=0).tolist()
    agree = same.index(False) if False in same else n
    worst = 0.0
    for step in range(max(agree, 1)):
        la, lb = a.logits[step][:rows].float(), b.logits[step].float()
        worst = max(worst, ((la - lb).abs().max() / la.abs().max()).item())
    return worst, agree


@pytest.fixture(scope="module")
def loaded(model_dir: Path):
    from cxr_harness_plugins.benchmarks.phantom8 import load_phantom8
    from harness.model.loading import ModelSpec, load_base
    from harness.model.prompts import eval_prompt

    model, processor = load_base(ModelSpec(model=str(model_dir)))
    bench = load_phantom8()
    yield model, processor, bench.test[0].image, eval_prompt(list(bench.classes))
    del model
    gc.collect()


def test_compiled_decoder_gives_the_plain_logits(loaded) -> None:
    model, processor, image, prompt = loaded
    gap, agree, floor = _logit_gap(model, processor, image, prompt, compiled=True)
    print(
        f"compiled vs plain: max |Δlogit|/max|logit| {gap:.4g} over {agree} agreeing steps; "
        f"bf16 floor (plain, batch 8 vs 1) {floor:.4g}; tolerance {_tolerance(floor):.4g}"
    )
    assert gap <= _tolerance(floor) and agree >= 4


def test_merged_adapter_gives_the_unmerged_logits(loaded) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from harness.model.gpu_eval import merged_for_eval

    model, processor, image, prompt = loaded
    torch.manual_seed(0)
    config = LoraConfig(
        r=16, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft = get_peft_model(model, config)
    try:
        from harness.model.decoding import PAD_MULTIPLE, _pad_left
        from harness.model.fastpath.fast_pixels import encode_prompts_fast

        inputs = _pad_left(
            encode_prompts_fast(processor, [image] * 8, [prompt] * 8, model.device),
            PAD_MULTIPLE,
            processor.tokenizer.pad_token_id,
        )
        common = {
            "max_new_tokens": 16,
            "do_sample": False,
            "pad_token_id": processor.tokenizer.pad_token_id,
            "return_dict_in_generate": True,
            "output_logits": True,
        }
        with torch.inference_mode():
            unmerged = peft.generate(**inputs, **common)
            single = peft.generate(**_first_row(inputs), **common)
            with merged_for_eval(peft) as merged:
                assert merged
                inside = peft.generate(**inputs, **common)
            with peft.disable_adapter():
                base = peft.generate(**inputs, **common)
        gap, agree = _compare(unmerged, inside)
        floor, _ = _compare(unmerged, single)
        adapter_effect, _ = _compare(unmerged, base)
        print(
            f"merged vs unmerged: {gap:.4g} over {agree} steps; bf16 floor (unmerged, batch 8 "
            f"vs 1) {floor:.4g}; tolerance {_tolerance(floor):.4g}; adapter effect "
            f"{adapter_effect:.4g}"
        )
        assert gap <= _tolerance(floor) and agree >= 4
        assert adapter_effect > gap  # the adapter changes the logits more than merging does
    finally:
        peft.unload()


HF_TRAINERS = ["lora", "rslora", "dora", "qlora"]
UNSLOTH_TRAINERS = ["lora", "rslora", "qlora"]


@pytest.fixture(scope="module")
def hf_grid(model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One ``harness bench`` of the base and every trainer on ``backend=hf``, as a user runs a
    grid: LoRA, rsLoRA and DoRA are evaluated on the base row's compiled decoder."""
    trainers = [t for t in HF_TRAINERS if t != "qlora" or importlib.util.find_spec("bitsandbytes")]
    out = tmp_path_factory.mktemp("grid") / "bench"
    code, text = _cli(
        ["bench", "--model", str(model_dir), "--out", str(out)]
        + [arg for t in trainers for arg in ("--trainer", t)]
        + ["-o", f"trainer.max_steps={STEPS}", "-o", "trainer.backend=hf"]
        + ["--max-new-tokens", NEW_TOKENS]
    )
    assert code == 0, text
    from harness.results.events import read_events

    for e in read_events(out):  # the log shows what each stage cost (warm-ups in particular)
        if e.get("event") == "stage_finished":
            print(f"grid stage {e['stage']}: {e['seconds']} s")
    rows = {r["trainer"]: r for r in json.loads((out / "results.json").read_text())["results"]}
    return out, rows


@pytest.mark.parametrize("trainer", HF_TRAINERS)
def test_bench_trains_and_eval_adapter_reproduces_it(
    model_dir: Path, hf_grid, tmp_path: Path, trainer: str
) -> None:
    if trainer == "qlora":
        pytest.importorskip("bitsandbytes")
    out, rows = hf_grid
    row = rows[trainer]
    assert row["resolved"]["backend"] == "hf"
    assert row["resolved"]["steps_run"] == int(STEPS)
    assert row["resolved"]["load_in_4bit"] is (trainer == "qlora")
    merged = row["fast_paths"]["paths"]["merged_adapter"]
    assert merged["applied"] is (trainer != "qlora")  # a 4-bit base is never merged
    assert merged["on_shared_base"] is (trainer != "qlora")  # one compiled decoder
    again = tmp_path / "eval"
    code, text = _cli(
        ["eval", "--model", str(model_dir), "--adapter", row["adapter_dir"], "--out", str(again)]
        + ["--max-new-tokens", NEW_TOKENS]
    )
    assert code == 0, text
    assert "metrics match the run's record" in text
    (re_row,) = json.loads((again / "results.json").read_text())["results"]
    assert re_row["metrics"] == row["metrics"]
    first = _predictions(out)[row["config_id"]]
    (second,) = _predictions(again).values()
    assert second == first  # every answer, not only the metrics
    assert len(set(first)) > 1  # varied text: the comparison has teeth


@pytest.mark.parametrize("trainer", UNSLOTH_TRAINERS)
def test_unsloth_trains_or_is_refused_before_any_work(
    model_dir: Path, tmp_path: Path, trainer: str
) -> None:
    """An unsloth that declares it does not support the installed libraries is refused (exit 2,
    nothing written); one that supports them trains and its adapter re-evaluates exactly."""
    if importlib.util.find_spec("unsloth") is None:
        pytest.skip("unsloth is not installed")
    if trainer == "qlora":
        pytest.importorskip("bitsandbytes")
    from cxr_harness_plugins.trainers.unsloth_backend import unsloth_conflict

    out = tmp_path / "bench"
    args = ["bench", "--model", str(model_dir), "--trainer", trainer, "--no-base"]
    args += ["--out", str(out), "-o", "trainer.backend=unsloth", "-o", f"trainer.max_steps={STEPS}"]
    args += ["--max-new-tokens", NEW_TOKENS]
    if conflict := unsloth_conflict():
        code, text = _cli(args)
        print(f"refused: {conflict}")
        assert code == 2 and "declares it does not support" in text, text
        assert not (out / "results.json").exists() and not list(out.glob("runs/*/adapter"))
        return
    if problem := _unsloth_problem():
        pytest.skip(problem)
    code, text = _cli(args)
    assert code == 0, text
    (row,) = json.loads((out / "results.json").read_text())["results"]
    assert row["resolved"]["backend"] == "unsloth"
    again = tmp_path / "eval"
    code, text = _cli(
        ["eval", "--model", str(model_dir), "--adapter", row["adapter_dir"], "--out", str(again)]
        + ["--max-new-tokens", NEW_TOKENS]
    )
    assert code == 0 and "metrics match the run's record" in text, text
    (first,) = _predictions(out).values()
    (second,) = _predictions(again).values()
    assert second == first


def test_dora_under_unsloth_is_refused_before_any_work(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, text = _cli(
        ["bench", "--model", str(model_dir), "--trainer", "dora", "--out", str(out)]
        + ["-o", "trainer.backend=unsloth", "-o", f"trainer.max_steps={STEPS}"]
    )
    assert code == 2 and "trainer.backend=unsloth cannot honour" in text, text
    assert not (out / "results.json").exists() and not list(out.glob("runs/*/adapter"))
