"""LaCT layer behaviours: update rule vs autograd, block-causality, gradient flow, padding,
non-finite update recovery, torch.compile."""

import logging

import pytest
import torch

import models.fast_weight as fast_weight
import models.lact_layer as lact_layer
from models import LaCTAudioConfig, build_model
from models.factory import ASR_MODELS, GENERATION_MODELS
from models.lact_layer import LaCTLayer


def small(**kw):
    base = dict(hidden_size=32, num_layers=2, num_attention_heads=4, num_lact_heads=2, chunk_size=8,
                window_size=6, inter_multi=2.0, vocab_size=11, audio_vocab_size=17, dropout=0.0,
                mel_bins=12)
    base.update(kw)
    return LaCTAudioConfig(**base)


def test_layer_update_matches_autograd_of_inner_loss():
    """One chunk through the layer == one step along autograd's gradient of
    mean_t lr_t <f(k_t), v_t> with the layer's own per-token, per-head lrs, then row renorm."""
    torch.manual_seed(0)
    layer = LaCTLayer(small(use_muon=False, use_momentum=False, chunk_size=64), causal=True)
    B, T = 3, 20
    x = torch.randn(B, T, 32)
    _, _, _, fq, fk, fv, lr, _ = layer._project(x, None)
    _, W = layer(x, return_fast=True)   # T < chunk: one (flushed) update over the whole sequence

    w = [p.detach().unsqueeze(0).expand(B, *p.shape).reshape(B * p.shape[0], *p.shape[1:]).clone()
         .requires_grad_(True) for p in (layer.w0, layer.w1, layer.w2)]
    expected = []
    for i in range(3):
        lr_i = lr[i].detach()
        h = torch.nn.functional.silu(fk.detach() @ w[0].transpose(1, 2)) * (fk.detach() @ w[2].transpose(1, 2))
        f = h @ w[1].transpose(1, 2)
        objective = (lr_i.unsqueeze(-1) * f * fv.detach()).sum() / T
        g = torch.autograd.grad(objective, w[i])[0]
        new = w[i].detach() + g
        expected.append(new / (new.norm(dim=2, keepdim=True) + 1e-5) * w[i].detach().norm(dim=2, keepdim=True))
    for got, want in zip(W, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("muon,momentum", [(False, False), (True, True)])
def test_block_causal_chunk_output_ignores_the_future(muon, momentum):
    torch.manual_seed(1)
    # 8 LaCT heads of dim 4: Muon needs chunks >= 2 x head dim
    layer = LaCTLayer(small(use_muon=muon, use_momentum=momentum, num_lact_heads=8), causal=True).eval()
    x = torch.randn(2, 40, 32)
    y = layer(x)
    for cut in (8, 16, 24):   # chunk boundaries (chunk_size 8)
        x2 = x.clone()
        x2[:, cut:] = torch.randn_like(x2[:, cut:]) * 3
        y2 = layer(x2)
        torch.testing.assert_close(y2[:, :cut], y[:, :cut])
        assert not torch.allclose(y2[:, cut:], y[:, cut:])


def test_block_causal_updates_do_change_later_chunks():
    """The fast weights carry information forward: changing chunk 0 (beyond the attention
    window) changes the output of chunk 3."""
    torch.manual_seed(2)
    layer = LaCTLayer(small(window_size=2), causal=True).eval()
    x = torch.randn(1, 32, 32)
    x2 = x.clone()
    x2[:, :4] = torch.randn(1, 4, 32)
    assert not torch.allclose(layer(x)[:, 24:], layer(x2)[:, 24:])


def test_bidirectional_layer_looks_ahead():
    torch.manual_seed(3)
    layer = LaCTLayer(small(chunk_size=64, window_size=2), causal=False).eval()
    x = torch.randn(1, 30, 32)
    x2 = x.clone()
    x2[:, -1] += 5.0
    # token 0 is outside the attention window of token 29; only the fast weights connect them
    assert not torch.allclose(layer(x)[:, 0], layer(x2)[:, 0])


def test_bidirectional_memory_spans_every_chunk_of_a_long_input(monkeypatch):
    """lact_causal false, input of 5 chunks: every token reads the weights left by the whole
    input, so chunk 0 sees a change in the last chunk (far outside the attention window), and
    the fast branch of chunk 0 is f of the final weights the layer returns."""
    torch.manual_seed(3)
    layer = LaCTLayer(small(chunk_size=8, window_size=2), causal=False).eval()
    x = torch.randn(1, 40, 32)
    x2 = x.clone()
    x2[:, -1] += 5.0
    assert not torch.allclose(layer(x)[:, :8], layer(x2)[:, :8])

    seen = {}
    merge = layer._merge_fast

    def capture(fw, x):              # the fast branch's per-token output before merging
        seen["fw"] = fw
        return merge(fw, x)

    monkeypatch.setattr(layer, "_merge_fast", capture)
    _, W = layer(x, return_fast=True)
    _, _, _, fq, _, _, _, _ = layer._project(x, None)
    torch.testing.assert_close(seen["fw"][:, :8], layer.fast_kind.apply(layer.fast_kind.fuse(W), fq[:, :8]))
    assert not torch.allclose(W[0], layer.initial_fast_weights(1)[0])   # the updates happened


@pytest.mark.parametrize("causal", [True, False])
def test_outer_loop_gradients_reach_every_slow_parameter(causal):
    torch.manual_seed(4)
    model = build_model(ASR_MODELS, "lact", small(lact_causal=causal, chunk_size=4))
    feats, lengths = torch.randn(2, 60, 12), torch.tensor([60, 41])
    logits, out_lengths = model(feats, lengths)
    loss = torch.nn.functional.ctc_loss(logits.log_softmax(-1).transpose(0, 1), torch.tensor([[1, 2, 3], [4, 5, 0]]),
                                        out_lengths, torch.tensor([3, 2]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("causal", [True, False])
def test_long_inputs_recompute_the_window_attention_in_the_backward(monkeypatch, causal):
    """Past the dense-attention length the window branch is recomputed in the backward: the
    same output and gradients as keeping its activations, and less kept for the backward."""
    torch.manual_seed(7)
    layer = LaCTLayer(small(chunk_size=128), causal=causal)
    x = torch.randn(2, 300, 32, requires_grad=True)                 # > DENSE_MAX_TOKENS
    valid = torch.ones(2, 300, dtype=torch.bool)
    valid[1, 250:] = False

    def run():
        saved = {}

        def pack(t):
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        layer.zero_grad()
        x.grad = None
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = layer(x, valid)
        (out * torch.linspace(-1, 1, 32)).square().sum().backward()
        grads = [x.grad.clone()] + [p.grad.clone() for p in layer.parameters()]
        return out.detach(), grads, sum(saved.values())

    out, grads, kept = run()
    monkeypatch.setattr(lact_layer, "uses_window_blocks", lambda tokens, window: False)  # keep all
    ref_out, ref_grads, ref_kept = run()
    torch.testing.assert_close(out, ref_out)
    for g, ref in zip(grads, ref_grads):
        torch.testing.assert_close(g, ref)
    assert kept < 0.8 * ref_kept


def test_generator_gradients_reach_every_slow_parameter():
    torch.manual_seed(5)
    model = build_model(GENERATION_MODELS, "lact", small())
    tokens = torch.randint(0, 17, (2, 30))
    logits = model(tokens[:, :-1])
    torch.nn.functional.cross_entropy(logits.reshape(-1, 17), tokens[:, 1:].reshape(-1)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("causal", [True, False])
def test_padding_one_sequence_does_not_change_another(causal):
    torch.manual_seed(6)
    layer = LaCTLayer(small(chunk_size=8), causal=causal).eval()
    a = torch.randn(1, 21, 32)
    alone = layer(a)
    batch = torch.randn(2, 37, 32) * 4          # garbage in a's padded positions
    batch[0, :21] = a[0]
    valid = torch.arange(37)[None] < torch.tensor([[21], [37]])
    together = layer(batch, valid)
    torch.testing.assert_close(together[0, :21], alone[0], rtol=1e-5, atol=1e-5)


def test_nan_update_is_dropped_counted_and_reported(monkeypatch, caplog):
    torch.manual_seed(7)
    layer = LaCTLayer(small(chunk_size=8), causal=True).eval()
    x = torch.randn(2, 40, 32)
    clean = layer(x)
    real = fast_weight.swiglu_update_grads
    calls = {"n": 0}

    def poisoned(*args):
        dws = real(*args)
        calls["n"] += 1
        # The second of the 4 chunk updates, row 0 (batch 0, head 0), in every pass: the layer
        # runs its chunks again with per-row checks when the final weights are not finite.
        if calls["n"] % 4 == 2:
            dws = (dws[0].clone(),) + dws[1:]
            dws[0][0, 0, 0] = float("nan")
        return dws

    monkeypatch.setattr(fast_weight, "swiglu_update_grads", poisoned)
    out = layer(x)
    assert torch.isfinite(out).all()
    assert layer.error_handler.dropped_updates == 1
    with caplog.at_level(logging.WARNING):
        assert layer.error_handler.report() == 1
    assert "dropped 1 non-finite" in caplog.text
    # chunks 0-1 untouched; batch item 1 never affected; batch item 0 differs after the drop
    torch.testing.assert_close(out[:, :16], clean[:, :16])
    torch.testing.assert_close(out[1], clean[1])
    assert not torch.allclose(out[0, 16:], clean[0, 16:])


def test_dropped_update_keeps_previous_weights(monkeypatch):
    torch.manual_seed(8)
    layer = LaCTLayer(small(chunk_size=8, use_muon=False, use_momentum=False), causal=True).eval()
    x = torch.randn(1, 8, 32)
    monkeypatch.setattr(fast_weight, "swiglu_update_grads",
                        lambda *a: tuple(torch.full_like(w, float("inf")) for w in a[:2]))
    _, W = layer(x, return_fast=True)
    init = layer.initial_fast_weights(1)
    for got, want in zip(W, init):
        torch.testing.assert_close(got, want)
    assert layer.error_handler.dropped_updates == 2   # one update per head


def test_muon_changes_updates_but_not_the_first_chunk():
    torch.manual_seed(9)
    layer = LaCTLayer(small(use_muon=False, chunk_size=8), causal=True).eval()
    x = torch.randn(1, 24, 32)
    plain = layer(x)
    layer.use_muon = True
    muon = layer(x)
    assert torch.isfinite(muon).all()
    torch.testing.assert_close(muon[:, :8], plain[:, :8])       # before any update
    assert not torch.allclose(muon[:, 8:], plain[:, 8:])


def test_momentum_coefficient_zero_equals_no_momentum():
    torch.manual_seed(10)
    with_m = LaCTLayer(small(use_momentum=True, chunk_size=4), causal=True).eval()
    without = LaCTLayer(small(use_momentum=False, chunk_size=4), causal=True).eval()
    without.load_state_dict({k: v for k, v in with_m.state_dict().items() if "momentum" not in k})
    x = torch.randn(2, 24, 32)
    with torch.no_grad():
        with_m.momentum_proj.weight.zero_()
        with_m.momentum_proj.bias.fill_(-40.0)      # sigmoid -> 0: no momentum
        torch.testing.assert_close(with_m(x), without(x))
        with_m.momentum_proj.bias.fill_(40.0)       # sigmoid -> 1: full momentum
        assert not torch.allclose(with_m(x)[:, 8:], without(x)[:, 8:])


def test_importing_the_training_loop_does_not_load_dynamo():
    # Every Ray Train controller and worker imports it: Dynamo costs them ~3 s each.
    import subprocess
    import sys

    code = "import sys, jobs.training.loop; print('torch._dynamo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_torch_compile_runs_the_layer_like_eager():
    # Three of the layer's hand-derived autograd functions are opaque to torch.compile (graph
    # breaks around them): Dynamo crashed tracing into them with dynamic shapes, as
    # bench/step_cost.py --compile uses. Compiled output and gradients equal eager. (The
    # "aot_eager" backend traces like Inductor but skips its C++ build: seconds, not ~40 s.)
    torch.manual_seed(6)
    layer = LaCTLayer(small(chunk_size=8), causal=True)
    x = torch.randn(2, 20, 32, requires_grad=True)
    valid = torch.ones(2, 20, dtype=torch.bool)
    eager = layer(x, valid)
    (eager_grad,) = torch.autograd.grad(eager.square().sum(), x)
    compiled = torch.compile(layer, backend="aot_eager", dynamic=True)(x, valid)
    (compiled_grad,) = torch.autograd.grad(compiled.square().sum(), x)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=1e-5)
