"""The LaCT layer's ablation switches (Tune's component arms): window attention only, fast
weights only, a linear fast weight; each streams like its offline forward, the linear update is
the inner loss's negative gradient, and eval forwards report how far the fast weights moved."""

import pytest
import torch

from models import LaCTAudioConfig, build_model
from models.factory import ASR_MODELS
from models.fast_weight import linear_update_grads
from models.lact_layer import LaCTLayer, fast_weight_changes

ARMS = {"window_only": {"use_fast_weights": False},
        "fast_weights_only": {"use_window_attention": False},
        "linear_fast_weight": {"fast_weight": "linear"}}


def causal_asr(**switches):
    torch.manual_seed(0)
    cfg = LaCTAudioConfig(hidden_size=32, num_layers=2, num_attention_heads=4, num_lact_heads=2,
                          chunk_size=5, window_size=4, vocab_size=11, dropout=0.0, mel_bins=12,
                          lact_causal=True, **switches)
    return build_model(ASR_MODELS, "lact", cfg).eval().double()


@pytest.mark.parametrize("arm", list(ARMS))
def test_each_arm_streams_exactly_like_its_offline_forward(arm):
    model = causal_asr(**ARMS[arm])
    feats = torch.randn(2, 83, 12, dtype=torch.float64)
    with torch.no_grad():
        offline, _ = model(feats)
        state, outs, start = None, [], 0
        for n in (7, 13, 30, 40):
            logits, state = model.streaming_inference(feats[:, start:start + n], state,
                                                      final=start + n >= 83)
            outs.append(logits)
            start += n
    torch.testing.assert_close(torch.cat(outs, dim=1), offline, rtol=1e-9, atol=1e-9)


def test_arms_drop_exactly_the_parameters_of_the_removed_component():
    full = LaCTLayer(LaCTAudioConfig(hidden_size=32, num_attention_heads=4, num_lact_heads=2), causal=True)
    window_only = LaCTLayer(LaCTAudioConfig(hidden_size=32, num_attention_heads=4, num_lact_heads=2,
                                            use_fast_weights=False), causal=True)
    linear = LaCTLayer(LaCTAudioConfig(hidden_size=32, num_attention_heads=4, num_lact_heads=2,
                                       fast_weight="linear"), causal=True)
    names = {n for n, _ in full.named_parameters()}
    assert {"w0", "w1", "w2", "lr_proj.weight"} <= names
    assert not {n for n, _ in window_only.named_parameters()} & {"w0", "w1", "w2", "lr_proj.weight"}
    assert linear.w0.shape == (2, 16, 16) and not hasattr(linear, "w1")
    assert linear.lr_proj.out_features == 2   # one learning rate per head


def test_linear_update_is_the_negative_gradient_of_the_inner_loss():
    torch.manual_seed(1)
    W = torch.randn(3, 8, 8, dtype=torch.float64, requires_grad=True)
    k, v = torch.randn(3, 5, 8, dtype=torch.float64), torch.randn(3, 5, 8, dtype=torch.float64)
    lr = torch.rand(3, 5, dtype=torch.float64)
    loss = -(lr * (torch.einsum("bij,bnj->bni", W, k) * v).sum(-1)).sum()
    (grad,) = torch.autograd.grad(loss, W)
    torch.testing.assert_close(linear_update_grads(k, v, lr), -grad)


def test_eval_forward_reports_fast_weight_change_per_layer():
    model = causal_asr()
    with torch.no_grad():
        model(torch.randn(1, 60, 12, dtype=torch.float64))
    changes = fast_weight_changes(model)
    assert len(changes) == 2 and all(0.0 < c < 2.0 for c in changes)
    assert fast_weight_changes(causal_asr(use_fast_weights=False)) == []


@pytest.mark.parametrize("fields, message", [
    ({"use_fast_weights": False, "use_window_attention": False}, "at least one"),
    ({"fast_weight": "mlp"}, "fast_weight"),
    ({"use_fast_weights": "no"}, "use_fast_weights"),
])
def test_bad_switches_raise_naming_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        LaCTAudioConfig(**fields)
