"""Packed grouped-query decode attention: equal to a plain repeat-KV softmax attention, packed
also under torch.compile (where transformers' sdpa path repeats key/value heads), and switched
on only for the span of a static/compiled generation."""

from __future__ import annotations

import math
import types

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

import harness.model.fastpath.decode_attention as da
from harness.evaluation.generate import GenerationConfig, generate_answers
from harness.model.fastpath.compat import DECODE_ENV
from harness.model.loading import ModelSpec, load_base


class _Attn(torch.nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = True


def _inputs(batch=3, heads=16, kv_heads=2, kv_len=37, dim=32, mask="bool", dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    # as the model passes it: (batch, 1, heads, dim) transposed, i.e. not contiguous
    q = torch.randn(batch, 1, heads, dim, generator=g).transpose(1, 2)
    k = torch.randn(batch, kv_heads, kv_len, dim, generator=g)
    v = torch.randn(batch, kv_heads, kv_len, dim, generator=g)
    mask_heads = heads if mask == "per_head" else 1
    mask_batch = 1 if mask == "batch1" else batch
    keep = torch.rand(mask_batch, mask_heads, 1, kv_len, generator=g) > 0.3
    keep[..., -1] = True  # every row attends to something
    m = torch.where(keep, 0.0, torch.finfo(dtype).min).to(dtype) if mask == "float" else keep
    return q.to(dtype), k.to(dtype), v.to(dtype), m


def _reference(q, k, v, mask, scale):
    """Softmax attention with key/value heads repeated, in float64."""
    q, k, v = (t.double() for t in (q, k, v))
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    scores = q @ k.transpose(-1, -2) * scale
    if mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, -math.inf)
    else:
        scores = scores + mask.double()
    return (scores.softmax(-1) @ v).transpose(1, 2)  # (batch, 1, heads, dim)


@pytest.mark.parametrize("mask", ["bool", "float", "batch1", "per_head"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_equals_a_plain_repeat_kv_attention(mask: str, dtype: torch.dtype) -> None:
    module = _Attn(groups=8)
    q, k, v, m = _inputs(mask=mask, dtype=dtype)
    ours, _ = da.packed_decode_attention(module, q, k, v, m, scaling=0.2)
    assert ours.shape == (3, 1, 16, 32) and ours.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    ref = _reference(q, k, v, m, 0.2).to(dtype)
    torch.testing.assert_close(ours, ref, atol=tol, rtol=tol)


def test_other_calls_go_to_transformers_sdpa(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prompts (several query tokens), no mask, and a per-head mask are not packed here."""
    seen: list[tuple[int, bool]] = []

    def spy(module, query, key, value, mask, **kwargs):
        seen.append((query.shape[2], mask is None))
        return sdpa_attention_forward(module, query, key, value, mask, **kwargs)

    monkeypatch.setattr(da, "sdpa_attention_forward", spy)
    module = _Attn(groups=8)
    q, k, v, m = _inputs()
    da.packed_decode_attention(module, q, k, v, m)  # packed: not seen
    da.packed_decode_attention(module, q, k, v, None)
    da.packed_decode_attention(module, q, k, v, _inputs(mask="per_head")[3])
    prompt = torch.randn(3, 16, 5, 32)
    da.packed_decode_attention(module, prompt, k, v, torch.ones(3, 1, 5, 37, dtype=torch.bool))
    assert seen == [(1, True), (1, False), (5, False)]


def _graph_ops(fn, *args) -> tuple[list[str], torch.Tensor]:
    """Call targets (functions, tensor methods) of `fn` traced with fullgraph=True; no compiler."""
    ops: list[str] = []

    def backend(gm: torch.fx.GraphModule, _inputs):
        ops.extend(str(n.target) for n in gm.graph.nodes if n.op.startswith("call_"))
        return gm.forward

    torch._dynamo.reset()
    out = torch.compile(fn, backend=backend, fullgraph=True)(*args)
    torch._dynamo.reset()
    return ops, out


def test_stays_packed_under_compile_where_stock_repeats_kv_heads() -> None:
    module = _Attn(groups=8)
    q, k, v, m = _inputs()
    stock_ops, stock = _graph_ops(lambda *a: sdpa_attention_forward(module, *a)[0], q, k, v, m)
    ours_ops, ours = _graph_ops(lambda *a: da.packed_decode_attention(module, *a)[0], q, k, v, m)
    assert any("expand" in op for op in stock_ops)  # repeat_kv over the whole cache
    assert not any("expand" in op for op in ours_ops)
    torch.testing.assert_close(ours, stock, atol=1e-5, rtol=1e-5)


def test_context_switches_only_sdpa_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    from peft import LoraConfig, get_peft_model

    model, _ = load_base(ModelSpec(), device="cpu")
    text = model.config.text_config
    layer = model.model.language_model.layers[0].self_attn
    assert text._attn_implementation == "sdpa" and layer.config is text
    with pytest.raises(RuntimeError, match="boom"), da.decode_attention(model) as on:
        assert on and layer.config._attn_implementation == da.NAME
        assert model.config.vision_config._attn_implementation == "sdpa"  # vision untouched
        raise RuntimeError("boom")
    assert text._attn_implementation == "sdpa"
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    with da.decode_attention(peft) as on:  # a trained adapter is evaluated wrapped
        assert on and layer.config._attn_implementation == da.NAME
    assert text._attn_implementation == "sdpa"
    monkeypatch.setenv(DECODE_ENV, "stock")
    with da.decode_attention(model) as on:
        assert not on and text._attn_implementation == "sdpa"
    monkeypatch.delenv(DECODE_ENV)
    text._attn_implementation = "eager"
    try:
        with da.decode_attention(model) as on:
            assert not on and text._attn_implementation == "eager"
    finally:
        text._attn_implementation = "sdpa"


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_static_generation_runs_packed_decode_steps(
    monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    """Every one-token step of the static decoder goes through the packed branch, and answers
    equal the plain path's (the full comparison is in test_fast_eval)."""
    from cxr_harness_plugins.benchmarks.phantom8 import load_phantom8

    model, processor = load_base(ModelSpec(), device="cpu")
    samples = load_phantom8().test[:3]
    calls = {"packed": 0, "fallback_one_token": 0}

    def packed_sdpa(query, *args, **kwargs):
        calls["packed"] += 1
        return torch.nn.functional.scaled_dot_product_attention(query, *args, **kwargs)

    def fallback(module, query, *args, **kwargs):
        calls["fallback_one_token"] += query.shape[2] == 1
        return sdpa_attention_forward(module, query, *args, **kwargs)

    monkeypatch.setattr(da, "F", types.SimpleNamespace(scaled_dot_product_attention=packed_sdpa))
    monkeypatch.setattr(da, "sdpa_attention_forward", fallback)
    images, prompts = [s.image for s in samples], ["Read this X-ray."] * 3
    static = generate_answers(
        model, processor, images, prompts, GenerationConfig(6, 3, decoding="static")
    )
    monkeypatch.undo()
    plain = generate_answers(model, processor, images, prompts, GenerationConfig(6, 3))
    assert static == plain
    assert calls["fallback_one_token"] == 0
    assert calls["packed"] % model.config.text_config.num_hidden_layers == 0
    assert calls["packed"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiled decoding needs a CUDA GPU")
def test_compiled_decoding_gives_the_plain_greedy_answers_on_cuda() -> None:
    """torch.compile + CUDA graphs over the packed attention: the same greedy text (fp32)."""
    from cxr_harness_plugins.benchmarks.phantom8 import load_phantom8

    model, processor = load_base(ModelSpec(dtype="float32"), device="cuda")
    bench = load_phantom8()
    samples = bench.test[::16][:8]
    images = [s.image for s in samples]
    prompts = [f"Read this X-ray ({i % 2})." for i in range(len(samples))]
    plain = generate_answers(model, processor, images, prompts, GenerationConfig(24, 4))
    compiled = generate_answers(
        model, processor, images, prompts, GenerationConfig(24, 4, decoding="compiled")
    )
    assert compiled == plain
    assert len(set(plain)) > 1
