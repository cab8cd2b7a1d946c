"""Packed grouped-query decode attention: equal to transformers' sdpa path, packed also under
torch.compile (where the stock path repeats key/value heads), and switched on only for the span
of a static/compiled generation."""

from __future__ import annotations

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

import harness.decode_attention as da
from harness.evaluation import GenerationConfig, generate_answers
from harness.modeling import ModelSpec, load_base


class _Attn(torch.nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = True


def _inputs(batch=3, heads=16, kv_heads=2, q_len=1, kv_len=37, dim=32, mask="bool"):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(batch, heads, q_len, dim, generator=g)
    k = torch.randn(batch, kv_heads, kv_len, dim, generator=g)
    v = torch.randn(batch, kv_heads, kv_len, dim, generator=g)
    keep = torch.rand(batch, 1, q_len, kv_len, generator=g) > 0.3
    keep[..., -1] = True  # every row attends to something
    if mask == "bool":
        m = keep
    elif mask == "float":
        m = torch.where(keep, 0.0, torch.finfo(torch.float32).min)
    else:
        m = None
    return q, k, v, m


@pytest.mark.parametrize("mask", ["bool", "float", None])
@pytest.mark.parametrize("q_len", [1, 5])
def test_equals_transformers_sdpa(mask: str | None, q_len: int) -> None:
    module = _Attn(groups=8)
    q, k, v, m = _inputs(q_len=q_len, mask=mask)
    ours, _ = da.packed_decode_attention(module, q, k, v, m, scaling=0.2)
    ref, _ = sdpa_attention_forward(module, q, k, v, m, scaling=0.2)
    assert ours.shape == ref.shape == (3, q_len, 16, 32)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def _graph_ops(fn, *args) -> list[str]:
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
    model, _ = load_base(ModelSpec(), device="cpu")
    text = model.config.text_config
    assert text._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError, match="boom"), da.decode_attention(model) as on:
        assert on and text._attn_implementation == da.NAME
        assert model.config.vision_config._attn_implementation == "sdpa"  # vision untouched
        raise RuntimeError("boom")
    assert text._attn_implementation == "sdpa"
    monkeypatch.setenv(da.STOCK_ENV, "stock")
    with da.decode_attention(model) as on:
        assert not on and text._attn_implementation == "sdpa"
    monkeypatch.delenv(da.STOCK_ENV)
    text._attn_implementation = "eager"
    try:
        with da.decode_attention(model) as on:
            assert not on and text._attn_implementation == "eager"
    finally:
        text._attn_implementation = "sdpa"


def test_static_generation_runs_packed_decode_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The static decoder's one-token steps go through the packed branch, and answers equal the
    plain path's (the full comparison is in test_fast_eval)."""
    from harness.benchmark import load_phantom8

    torch.set_num_threads(1)
    model, processor = load_base(ModelSpec(), device="cpu")
    samples = load_phantom8().test[:3]
    calls = {"packed": 0}
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(module, query, *args, **kwargs):
        if query.shape[2] == 1:
            calls["packed"] += 1
        return real(module, query, *args, **kwargs)

    real = da.packed_decode_attention
    monkeypatch.setattr(da, "packed_decode_attention", spy)
    images, prompts = [s.image for s in samples], ["Read this X-ray."] * 3
    static = generate_answers(
        model, processor, images, prompts, GenerationConfig(6, 3, decoding="static")
    )
    plain = generate_answers(model, processor, images, prompts, GenerationConfig(6, 3))
    assert static == plain
    layers = model.config.text_config.num_hidden_layers
    assert calls["packed"] >= layers  # at least one decode step through every layer
    assert torch.nn.functional.scaled_dot_product_attention is real_sdpa


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiled decoding needs a CUDA GPU")
def test_compiled_decoding_gives_the_plain_greedy_answers_on_cuda() -> None:
    """torch.compile + CUDA graphs over the packed attention: the same greedy text (fp32)."""
    from harness.benchmark import load_phantom8

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
