"""ASR models: shapes and lengths, padding invariance, equal size, checkpointing, learning."""

import pytest
import torch

from models import LaCTAudioConfig, build_model, count_parameters, ctc_greedy_decode
from models.factory import ASR_MODELS, GENERATION_MODELS


def cfg(**kw):
    base = dict(hidden_size=32, num_layers=2, num_attention_heads=4, num_lact_heads=2, chunk_size=6,
                window_size=5, vocab_size=9, dropout=0.0, mel_bins=10)
    base.update(kw)
    return LaCTAudioConfig(**base)


@pytest.mark.parametrize("arch", ["lact", "baseline"])
def test_shapes_and_4x_subsampled_lengths(arch):
    model = build_model(ASR_MODELS, arch, cfg())
    logits, lengths = model(torch.randn(3, 37, 10), torch.tensor([37, 20, 5]))
    assert logits.shape == (3, 10, 9)
    assert lengths.tolist() == [10, 5, 2]
    with pytest.raises(ValueError, match="features"):
        model(torch.randn(3, 37, 11))


@pytest.mark.parametrize("arch,causal", [("lact", False), ("lact", True), ("baseline", False)])
def test_padding_one_sequence_does_not_change_another(arch, causal):
    torch.manual_seed(0)
    model = build_model(ASR_MODELS, arch, cfg(lact_causal=causal)).eval().double()
    a = torch.randn(1, 45, 10, dtype=torch.float64)
    alone, la = model(a, torch.tensor([45]))
    batch = torch.randn(2, 90, 10, dtype=torch.float64) * 5      # garbage where a is padded
    batch[0, :45] = a[0]
    together, lb = model(batch, torch.tensor([45, 90]))
    n = int(la[0])
    assert int(lb[0]) == n
    torch.testing.assert_close(together[0, :n], alone[0], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("width,depth,heads,lact_heads,inter", [
    (32, 2, 4, 2, 2.0), (144, 4, 4, 2, 2.0), (256, 6, 8, 4, 2.0), (192, 4, 4, 1, 4.0)])
def test_lact_and_baseline_parameter_counts_within_5_percent(width, depth, heads, lact_heads, inter):
    c = cfg(hidden_size=width, num_layers=depth, num_attention_heads=heads, num_lact_heads=lact_heads,
            inter_multi=inter, mel_bins=80, vocab_size=40)
    for family in (ASR_MODELS, GENERATION_MODELS):
        lact, base = count_parameters(build_model(family, "lact", c)), count_parameters(build_model(family, "baseline", c))
        assert abs(lact - base) / base < 0.05, (family, lact, base)


@pytest.mark.parametrize("arch", ["lact", "baseline"])
def test_gradient_checkpointing_gives_the_same_gradients(arch):
    torch.manual_seed(1)
    plain = build_model(ASR_MODELS, arch, cfg())
    ckpt = build_model(ASR_MODELS, arch, cfg(gradient_checkpointing=True))
    ckpt.load_state_dict(plain.state_dict())
    feats, lengths = torch.randn(2, 40, 10), torch.tensor([40, 30])
    for m in (plain, ckpt):
        logits, _ = m(feats, lengths)
        logits.square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("arch", ["lact", "baseline"])
def test_ctc_training_fits_a_tiny_batch(arch):
    """Outer-loop training works end to end: CTC loss falls and greedy decoding recovers the labels."""
    torch.manual_seed(2)
    # Muon/momentum off: this checks the outer loop, cheaply (they have their own layer tests)
    model = build_model(ASR_MODELS, arch, cfg(hidden_size=48, vocab_size=6, use_muon=False, use_momentum=False))
    feats = torch.randn(2, 48, 10)
    lengths = torch.tensor([48, 40])
    targets = torch.tensor([[1, 2, 3, 4], [5, 3, 1, 0]])
    target_lengths = torch.tensor([4, 3])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        logits, out_lengths = model(feats, lengths)
        loss = torch.nn.functional.ctc_loss(logits.log_softmax(-1).transpose(0, 1), targets, out_lengths,
                                            target_lengths, zero_infinity=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    model.eval()
    with torch.no_grad():
        logits, out_lengths = model(feats, lengths)
    assert ctc_greedy_decode(logits, out_lengths) == [[1, 2, 3, 4], [5, 3, 1]]
