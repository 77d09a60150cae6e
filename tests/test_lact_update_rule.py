"""The LaCT update rule's scale: rates start at base_lr, the fast branch has a learnt per-head
output scale, and one update moves the weights alike on short and long chunks."""

import math

import torch
import torch.nn.functional as F

from models import LaCTAudioConfig
from models.lact_layer import LaCTLayer


def config(**kw):
    base = dict(hidden_size=64, num_layers=1, num_attention_heads=4, num_lact_heads=2,
                chunk_size=1024, window_size=8, use_muon=False, use_momentum=False, dropout=0.0,
                base_lr=7.0)
    base.update(kw)
    return LaCTAudioConfig(**base)


def test_rates_start_at_base_lr_for_every_token_head_and_weight():
    torch.manual_seed(0)
    layer = LaCTLayer(config(), causal=False)
    x = torch.randn(3, 40, 64) * 5
    valid = torch.ones(3, 40, dtype=torch.bool)
    valid[1, 30:] = False
    lr = layer._project(x, valid)[6]          # [3 weights, B*heads, T]
    per_row = lr.view(3, 3, 2, 40)
    torch.testing.assert_close(per_row[:, 0], torch.full_like(per_row[:, 0], 7.0))
    torch.testing.assert_close(per_row[:, 1, :, :30], torch.full_like(per_row[:, 1, :, :30], 7.0))
    assert per_row[:, 1, :, 30:].abs().max() == 0              # padding never updates


def test_output_scale_starts_at_one_and_is_learnt_per_head():
    torch.manual_seed(1)
    layer = LaCTLayer(config(), causal=False)
    x = torch.randn(2, 24, 64)
    assert math.isclose(float(F.silu(layer.fast_scale.bias[0].detach())), 1.0, rel_tol=1e-6)
    fw = torch.randn(2 * 2, 24, 32)
    merged = layer._merge_fast(fw, x)                           # [B, T, D]: head h = channels h*32..
    normed = layer.fast_norm(fw).view(2, 2, 24, 32).transpose(1, 2).reshape(2, 24, 64)
    torch.testing.assert_close(merged, normed)
    with torch.no_grad():
        layer.fast_scale.bias[0] = -40.0                        # silu(-40) ~ 0: head 0 silenced
    merged = layer._merge_fast(fw, x)
    assert merged[..., :32].abs().max() < 1e-12
    torch.testing.assert_close(merged[..., 32:], normed[..., 32:])
    layer(x).square().sum().backward()
    assert layer.fast_scale.weight.grad.abs().sum() > 0
    assert layer.lr_proj.weight.grad.abs().sum() > 0            # zero-initialised, still learnt


def relative_update(layer: LaCTLayer, T: int) -> float:
    torch.manual_seed(T)
    layer(torch.randn(4, T, 64))                                # eval mode records fast_change
    return layer.fast_change


def test_update_size_does_not_drift_with_chunk_length():
    """One update over 64 tokens and one over 512 (each a whole chunk) move the weights within a
    factor 3 of each other; a sum over tokens instead of the mean would differ ~8x."""
    torch.manual_seed(2)
    layer = LaCTLayer(config(), causal=False).eval()
    short, long = relative_update(layer, 64), relative_update(layer, 512)
    assert short > 1e-3 and long > 1e-3
    assert 1 / 3 < short / long < 3, (short, long)
    torch.manual_seed(2)
    layer = LaCTLayer(config(), causal=False).eval()            # padding does not dilute the mean
    x = torch.randn(2, 64, 64)
    valid = torch.ones(2, 96, dtype=torch.bool)
    valid[0, 64:] = False
    _, W = layer(torch.cat([x, torch.randn(2, 32, 64)], dim=1), valid, return_fast=True)
    _, W_alone = layer(x[:1], return_fast=True)
    for w, w_alone in zip(W, W_alone):                          # rows of sequence 0 (2 heads)
        torch.testing.assert_close(w[:2], w_alone, rtol=1e-4, atol=1e-5)


def test_row_norm_retention_matches_autograd_of_the_plain_formula():
    from models.row_norm_retention import retain_row_norms

    gen = torch.Generator().manual_seed(3)
    w = torch.randn(3, 5, 4, dtype=torch.float64, generator=gen)
    w[1, 2] = 0.0                                     # a zero row keeps finite gradients
    norms = torch.rand(3, 5, 1, dtype=torch.float64, generator=gen) + 0.5
    w.requires_grad_(True)
    norms.requires_grad_(True)
    out = retain_row_norms(w, norms)
    plain = w / (w.norm(dim=-1, keepdim=True) + 1e-5) * norms
    torch.testing.assert_close(out, plain)
    torch.testing.assert_close(out[0].norm(dim=-1), norms[0, :, 0] * (1 - 1e-5 / (1e-5 + w[0].norm(dim=-1))))
    upstream = torch.randn_like(out)
    got = torch.autograd.grad((out * upstream).sum(), (w, norms))
    expected = torch.autograd.grad((plain * upstream).sum(), (w, norms))
    for g, e in zip(got, expected):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, e)
    w_nonzero = torch.randn(2, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(retain_row_norms, (w_nonzero, norms[:2, :3].detach().requires_grad_(True)))


def test_fast_feature_map_matches_autograd_of_the_plain_formula():
    from models.fast_feature_map import fast_feature_map

    gen = torch.Generator().manual_seed(5)
    B, T, H, d = 2, 3, 2, 4
    x = torch.randn(B, T, H * d, dtype=torch.float64, generator=gen)
    scale = torch.randn(H * d, dtype=torch.float64, generator=gen)
    offset = torch.randn(H * d, dtype=torch.float64, generator=gen)
    offset[:d] = 0.0
    x[0, 1, :d] = 0.0                        # silu(0) = 0: a zero row, where the norm is clamped
    inputs = [t.requires_grad_(True) for t in (x, scale, offset)]

    def plain(x, scale, offset):
        rows = F.silu(x * scale + offset).view(B, T, H, d).transpose(1, 2).reshape(B * H, T, d)
        return F.normalize(rows, dim=-1, eps=1e-6)

    out = fast_feature_map(*inputs, H)
    torch.testing.assert_close(out, plain(*inputs))
    assert out[0, 1].abs().sum() == 0 and torch.allclose(out[1, 1].norm(), torch.tensor(1.0, dtype=torch.float64))
    upstream = torch.randn_like(out)
    got = torch.autograd.grad((out * upstream).sum(), inputs)
    expected = torch.autograd.grad((plain(*inputs) * upstream).sum(), inputs)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
    assert torch.autograd.gradcheck(lambda *a: fast_feature_map(*a, H), inputs)


def test_fast_output_merge_matches_autograd_of_rms_norm_and_scale():
    from models.fast_output_merge import fast_output_merge

    gen = torch.Generator().manual_seed(7)
    B, T, H, d = 2, 3, 2, 4
    fw = torch.randn(B * H, T, d, dtype=torch.float64, generator=gen, requires_grad=True)
    weight = torch.randn(d, dtype=torch.float64, generator=gen, requires_grad=True)
    scale = torch.randn(B, T, H, dtype=torch.float64, generator=gen, requires_grad=True)
    norm = torch.nn.RMSNorm(d, dtype=torch.float64)

    def plain(fw, weight, scale):
        normed = F.rms_norm(fw, (d,), weight, norm.eps).view(B, H, T, d).transpose(1, 2)
        return (normed * scale[..., None]).reshape(B, T, H * d)

    out = fast_output_merge(fw, weight, scale, None)
    torch.testing.assert_close(out, plain(fw, weight, scale))
    upstream = torch.randn_like(out)
    got = torch.autograd.grad((out * upstream).sum(), (fw, weight, scale))
    expected = torch.autograd.grad((plain(fw, weight, scale) * upstream).sum(), (fw, weight, scale))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
    assert torch.autograd.gradcheck(lambda *a: fast_output_merge(*a, None), (fw, weight, scale))
