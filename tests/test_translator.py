"""Translator architecture: every registered config, on tiny tensors (CPU)."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F

from vat.errors import ParamsError
from vat.models.blocks import GDFN, MDTA, ChannelLayerNorm, TransformerBlock
from vat.models.translator import (
    PAPER_PARAMS,
    TRANSLATORS,
    TranslatorConfig,
    VaT,
    create_translator,
    inference_state,
    parameter_count,
    parameter_table,
)

NAMES = list(TRANSLATORS)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@functools.cache
def _built(name: str, **overrides) -> VaT:
    return create_translator(name, **overrides)


def model_for(name: str, **overrides) -> VaT:
    """A fresh copy (tests mutate weights) of a cached build: w48 takes ~1 s to initialise."""
    return copy.deepcopy(_built(name, **overrides))


def images(b: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g), torch.rand(b, 3, h, w, generator=g)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_odd_sizes_and_no_nan(name):
    model = model_for(name)
    i_lq, i_r = images(1, 37, 53)
    with torch.no_grad():
        out = model.translate(i_lq, i_r)
        assert out["fused"].shape == (1, 3, 37, 53)
        assert out["gate"].shape == (1, 1, 37, 53)
        assert out["out"].shape == (1, 3, 37, 53)
        assert all(v.isfinite().all() for v in out.values())
        assert torch.equal(model(i_lq, i_r), out["out"])
        # smaller than the padding multiple: replicate instead of reflect
        tiny = model.t_b(i_lq[..., :3, :2])
        assert tiny.shape == (1, 3, 3, 2) and tiny.isfinite().all()


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_gradient(name):
    model = model_for(name)
    i_lq, i_r = images(1, 12, 20)
    fused, _ = model.fuse(i_lq, i_r)
    hq = model.t_a(fused)
    back = model.t_b(hq)
    g = torch.Generator().manual_seed(1)
    # random projections: a plain sum could cancel by symmetry
    loss = (hq * torch.randn(hq.shape, generator=g)).sum() + (
        back * torch.randn(back.shape, generator=g)
    ).sum()
    loss.backward()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and len(names) == len(list(model.parameters()))
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    zero = [n for n, p in model.named_parameters() if p.grad is not None and not p.grad.abs().sum() > 0]
    assert not missing and not zero, (missing, zero)
    assert {n.split(".")[0] for n in names} == {"gate", "t_a", "t_b"}


@pytest.mark.parametrize("name", NAMES)
def test_gate_in_unit_interval_and_blends(name):
    model = model_for(name)
    # push logits far apart around their median, so the sigmoid visits both ends
    i_lq, i_r = images(2, 9, 11)
    g = model.gate
    with torch.no_grad():
        g.to_weight.weight.mul_(50.0)
        g.to_weight.bias.zero_()
        logits = g.to_weight(g.blocks(g.embed(torch.cat([i_r, i_lq], 1))))
        g.to_weight.bias.fill_(-float(logits.median()))
    with torch.no_grad():
        fused, w = model.fuse(i_lq, i_r)
    assert w.shape == (2, 1, 9, 11) and w.dtype == torch.float32
    assert w.min() >= 0 and w.max() <= 1
    assert w.min() < 0.5 < w.max()  # not constant
    torch.testing.assert_close(fused, w * i_lq + (1 - w) * i_r, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bias, expect", [(1e4, "lq"), (-1e4, "r")])
def test_saturated_gate_is_exact(name, bias, expect):
    model = model_for(name)
    with torch.no_grad():
        model.gate.to_weight.weight.zero_()
        model.gate.to_weight.bias.fill_(bias)
    i_lq, i_r = images(1, 10, 14)
    with torch.no_grad():
        out = model.translate(i_lq, i_r)
    target = i_lq if expect == "lq" else i_r
    assert torch.equal(out["gate"], torch.full_like(out["gate"], 1.0 if expect == "lq" else 0.0))
    assert torch.equal(out["fused"], target)  # bit-exact
    with torch.no_grad():
        assert torch.equal(out["out"], model.t_a(target))


@pytest.mark.parametrize("name", NAMES)
def test_transformation_has_a_global_residual(name):
    model = model_for(name)
    with torch.no_grad():
        model.t_a.output.weight.zero_()
        x = images(1, 13, 19)[0]
        assert torch.equal(model.t_a(x), x)  # output = input + body(input), body = 0
        assert not torch.equal(model.t_b(x), x)


@pytest.mark.parametrize("name", NAMES)
def test_checkpointing_changes_nothing(name):
    i_lq, i_r = images(1, 12, 20)
    results = []
    for ckpt in (False, True):
        model = model_for(name, checkpoint=ckpt)
        assert model.config.checkpoint is ckpt
        calls = []
        for m in model.modules():
            if isinstance(m, MDTA):
                m.register_forward_hook(lambda *_, calls=calls: calls.append(1))
        out = model(i_lq, i_r)
        back = model.t_b(out)
        n_forward = len(calls)
        (out.square().sum() + back.abs().sum()).backward()
        # checkpointed blocks run their forward again during backward
        assert (len(calls) > n_forward) is ckpt
        results.append((out.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (out0, grads0), (out1, grads1) = results
    torch.testing.assert_close(out1, out0, rtol=0, atol=1e-6)
    assert grads0.keys() == grads1.keys()
    for n in grads0:
        torch.testing.assert_close(grads1[n], grads0[n], rtol=1e-6, atol=1e-6, msg=n)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_close_to_fp32(name):
    model = model_for(name)
    i_lq, i_r = images(1, 16, 24)
    with torch.no_grad():
        ref = model(i_lq, i_r)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused, w = model.fuse(i_lq, i_r)
            low = model.t_a(fused)
    assert w.dtype == torch.float32 and low.isfinite().all()
    body = (ref - fused).abs().max()  # size of T_A's residual branch, the part bf16 touches
    err = (low.float() - ref).abs().max()
    assert err < 0.02 + 0.05 * body, (err, body)


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_same_result(name):
    model = model_for(name)
    i_lq, i_r = images(2, 16, 24)
    with torch.no_grad():
        ref = model(i_lq, i_r)
        model = model.to(memory_format=torch.channels_last)
        out = model(i_lq.to(memory_format=torch.channels_last), i_r.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_seeded_init_is_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = create_translator("vat-w4", seed=0)
    b = create_translator("vat-w4", seed=0)
    c = create_translator("vat-w4", seed=1)
    assert torch.equal(state, torch.get_rng_state())
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    # T_A and T_B start different
    ta, tb = a.t_a.state_dict(), a.t_b.state_dict()
    assert not torch.equal(ta["embed.weight"], tb["embed.weight"])


def test_inference_state_dict_drops_t_b_and_reloads():
    full = create_translator("vat-w4", seed=3)
    state = full.inference_state_dict()
    assert state and not any(k.startswith("t_b.") for k in state)
    assert state.keys() == inference_state(full.state_dict()).keys()
    # G and T_A are initialised before T_B, so the inference build has the same weights
    lean = create_translator("vat-w4", seed=3, with_t_b=False)
    assert lean.t_b is None
    assert all(torch.equal(v, lean.state_dict()[k]) for k, v in state.items())
    lean = create_translator("vat-w4", seed=99, with_t_b=False)
    lean.load_state_dict(state, strict=True)
    i_lq, i_r = images(1, 11, 13)
    with torch.no_grad():
        assert torch.equal(lean(i_lq, i_r), full(i_lq, i_r))
    assert parameter_count(lean) == parameter_count(full.gate) + parameter_count(full.t_a)


def test_no_gate_ablation_uses_restored_image():
    model = create_translator("vat-w4", use_gate=False)
    assert model.gate is None
    i_lq, i_r = images(1, 10, 12)
    out = model.translate(i_lq, i_r)
    assert torch.equal(out["fused"], i_r) and torch.equal(out["gate"], torch.zeros(1, 1, 10, 12))
    (out["out"].square().sum() + model.t_b(out["out"]).sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_mdta_matches_per_head_reference():
    torch.manual_seed(0)
    attn = MDTA(8, heads=2)
    with torch.no_grad():
        attn.temperature.copy_(torch.tensor([0.5, 2.0]).view(2, 1, 1))
    x = torch.randn(2, 8, 5, 7)
    qkv = attn.qkv_dwconv(attn.qkv(x))
    q, k, v = qkv[:, :8], qkv[:, 8:16], qkv[:, 16:]
    heads = []
    for h, t in enumerate((0.5, 2.0)):
        sl = slice(4 * h, 4 * h + 4)
        qh, kh, vh = (z[:, sl].flatten(2) for z in (q, k, v))  # (B, 4, HW)
        qh, kh = qh / qh.norm(dim=-1, keepdim=True), kh / kh.norm(dim=-1, keepdim=True)
        a = torch.softmax(qh @ kh.transpose(1, 2) * t, dim=-1)  # (B, 4, 4): channels x channels
        heads.append((a @ vh).view(2, 4, 5, 7))
    ref = attn.project_out(torch.cat(heads, dim=1))
    torch.testing.assert_close(attn(x), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels", [4, 6, 16])  # 4, 6: the CPU's dim-1 path; 16: layer_norm's
def test_channel_layer_norm_is_restormer_withbias(channels):
    norm = ChannelLayerNorm(channels)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    x = (torch.randn(2, channels, 4, 5) * 3 + 1).requires_grad_()
    mu = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=False)
    c = (1, channels, 1, 1)
    ref = (x - mu) / torch.sqrt(var + 1e-5) * norm.weight.view(c) + norm.bias.view(c)
    torch.testing.assert_close(norm(x), ref, rtol=1e-5, atol=1e-5)
    # and the same gradients as F.layer_norm on the permutation (the path GPUs and bf16 take)
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(norm(x), (x, norm.weight, norm.bias), g)
    y = F.layer_norm(x.permute(0, 2, 3, 1), (channels,), norm.weight, norm.bias, 1e-5).permute(0, 3, 1, 2)
    for got, want in zip(grads, torch.autograd.grad(y, (x, norm.weight, norm.bias), g), strict=True):
        # float32 sums over 2 x 4 x 5 pixels of O(1) terms
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_parameter_table_and_paper_sizes():
    rows = {r["name"]: r for r in parameter_table()}
    assert list(rows) == NAMES
    for name, r in rows.items():
        model = create_translator(name, device="meta")
        assert r["params_total"] == parameter_count(model)
        assert r["params_inference"] == r["params_gate"] + r["params_transformation"]
        assert r["params_total"] == r["params_inference"] + parameter_count(model.t_b)
    sized = [rows[n] for n in NAMES if n.startswith("vat-w")]
    assert [r["width"] for r in sized] == sorted(PAPER_PARAMS)
    for small, big in zip(sized, sized[1:], strict=False):
        assert small["params_total"] < big["params_total"]
        assert small["params_inference"] < big["params_inference"]
    # the chosen depth matches the paper's two largest sizes (G + T_A), see the module docstring
    for r in sized[-2:]:
        assert abs(r["params_inference"] / r["paper_params"] - 1) < 0.01


def test_config_validation_and_round_trip():
    cfg = TranslatorConfig(width=8, blocks=[1, 2], heads=[1, 2])  # YAML lists become tuples
    assert cfg.blocks == (1, 2) and hash(cfg)
    assert TranslatorConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["blocks"] == [1, 2]
    with pytest.raises(ParamsError, match="heads"):
        TranslatorConfig(width=6, blocks=(1, 1), heads=(1, 5))
    with pytest.raises(ParamsError, match="same"):
        TranslatorConfig(blocks=(1, 1), heads=(1,))
    with pytest.raises(ParamsError, match="even"):
        TranslatorConfig(width=5)
    with pytest.raises(ParamsError, match="unknown"):
        TranslatorConfig.from_dict({"width": 8, "depth": 3})
    with pytest.raises(ParamsError, match="unknown translator"):
        create_translator("vat-w5")
    with pytest.raises(ParamsError, match="unknown translator option"):
        create_translator("vat-w4", dropout=0.1)
    single = VaT(TranslatorConfig(width=4, blocks=(1,), heads=(1,)))  # one level: no down/up
    x = torch.rand(1, 3, 5, 7)
    assert single(x, x).shape == x.shape


def test_set_checkpoint_toggles_every_block():
    model = create_translator("vat-release")
    model.set_checkpoint(True)
    blocks = [m for m in model.modules() if isinstance(m, TransformerBlock)]
    assert blocks and all(b.checkpoint for b in blocks) and model.config.checkpoint
    model.set_checkpoint(False)
    assert not any(b.checkpoint for b in blocks) and not model.config.checkpoint


def test_gate_sees_restored_then_degraded():
    """G concatenates (I_R, I_LQ) in this order, as the paper and the released code do."""
    model = create_translator("vat-w4")
    i_lq, i_r = images(1, 6, 6)
    with torch.no_grad():
        w = model.gate.weight(i_lq, i_r)
        x = torch.cat([i_r, i_lq], dim=1)
        logit = model.gate.to_weight(
            model.gate.blocks(F.conv2d(x, model.gate.embed.weight, model.gate.embed.bias, padding=1))
        )
    torch.testing.assert_close(w, torch.sigmoid(logit), rtol=0, atol=0)


def test_gate_init_and_t_a_independent_of_the_gate():
    from vat.models.translator import create_translator

    i_lq, i_r = images(1, 8, 8)
    for p in (0.018, 0.5):
        model = create_translator("vat-w4", identity_init=True, gate_init=p, seed=3)
        _, w = model.fuse(i_lq, i_r)
        torch.testing.assert_close(w, torch.full_like(w, p), rtol=1e-6, atol=0)
    # Table 4's no_gate row starts T_A where the gated one does (each part draws from its own generator)
    gated = create_translator("vat-w4", use_gate=True, seed=3).t_a.state_dict()
    plain = create_translator("vat-w4", use_gate=False, seed=3).t_a.state_dict()
    assert all(torch.equal(gated[k], plain[k]) for k in gated)
    other = create_translator("vat-w4", use_gate=True, seed=4).t_a.state_dict()
    assert not all(torch.equal(gated[k], other[k]) for k in gated)
    with pytest.raises(ParamsError, match="gate_init"):
        create_translator("vat-w4", gate_init=1.0)


def _gdfn_general_form(m: GDFN, z: torch.Tensor) -> torch.Tensor:
    """GDFN's forward off the CPU path (GPUs, bf16): one project_in and dwconv, then chunked."""
    x1, x2 = m.dwconv(m.project_in(z)).chunk(2, dim=1)
    return m.project_out(F.gelu(x1) * x2)


@pytest.mark.parametrize("shape,heads", [((2, 8, 5, 7), 2), ((3, 24, 6, 4), 3), ((1, 16, 9, 9), 1)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_cpu_paths_equal_restormers_form(shape, heads, channels_last):
    """MDTA's Gram attention and GDFN's halves (the CPU's float32 paths) against the per-head
    form GPUs run: values and every gradient to float32 rounding."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    attn = MDTA(shape[1], heads).to(memory_format=fmt)
    ffn = GDFN(shape[1], 2.66).to(memory_format=fmt)
    with torch.no_grad():
        attn.temperature.uniform_(0.5, 2.0)
    x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_()
    ffn_general = functools.partial(_gdfn_general_form, ffn)
    for module, fast, general in ((attn, attn._gram, attn._per_head), (ffn, ffn._halves, ffn_general)):
        assert torch.equal(module(x), fast(x))  # forward() takes the CPU path here
        g = torch.randn(shape)
        params = [x, *module.parameters()]
        got = torch.autograd.grad(fast(x), params, g)
        want = torch.autograd.grad(general(x), params, g)
        torch.testing.assert_close(fast(x), general(x), rtol=1e-5, atol=1e-5)
        for a, b in zip(got, want, strict=True):
            # float32 sums over at most 3 x 81 pixels and 72 channels of O(1) terms
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())


def test_gram_attention_of_a_blank_image_has_finite_gradients():
    # a uniform image: LayerNorm gives 0 everywhere, q = k = 0; normalize's eps keeps it finite
    attn = MDTA(8, 2)
    x = torch.zeros(1, 8, 4, 4, requires_grad=True)
    out = attn._gram(x)
    torch.testing.assert_close(out, attn._per_head(x), rtol=0, atol=0)
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in attn.parameters())
