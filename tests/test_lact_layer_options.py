"""LaCT layer options and reading rules: rotary positions on the fast q/k (fast_rotary), a short
chunk's step scaled by its length (scale_leftover_step), and what each token of a bidirectional
layer reads over several chunks (models/lact_layer.py's docstring)."""

import pytest
import torch

import models.lact_layer as lact_layer
from models import LaCTAudioConfig, build_model
from models.factory import ASR_MODELS
from models.attention import RotaryEmbedding
from models.lact_layer import LaCTLayer, skip_fast_weight_updates

D, C = 32, 8


def small(**kw):
    base = dict(hidden_size=D, num_layers=2, num_attention_heads=4, num_lact_heads=2, chunk_size=C,
                window_size=3, inter_multi=2.0, vocab_size=11, dropout=0.0, mel_bins=12)
    base.update(kw)
    return LaCTAudioConfig(**base)


def twin(causal: bool, **options):
    """The same layer with `options` off and on: the options add no parameters, so one state
    dict loads into both (strictly)."""
    torch.manual_seed(0)
    off = LaCTLayer(small(**{k: False for k in options}), causal).eval()
    on = LaCTLayer(small(**options), causal).eval()
    on.load_state_dict(off.state_dict())
    return off.double(), on.double()


# ---------------------------------------------------------------------------- fast_rotary
def test_fast_rotary_rotates_the_fast_q_and_k_by_position():
    off, on = twin(True, fast_rotary=True)
    x = torch.randn(2, 20, D, dtype=torch.float64)
    rope = RotaryEmbedding(D // 2).double()
    plain, rotated = off._project(x, None), on._project(x, None)
    for i in (3, 4):                                  # fq, fk [B*Hl, T, dl]
        torch.testing.assert_close(rotated[i], rope(plain[i], torch.arange(20)))
        torch.testing.assert_close(rotated[i].norm(dim=-1), torch.ones(4, 20, dtype=torch.float64))
    torch.testing.assert_close(rotated[5], plain[5])  # values are not rotated
    # absolute positions: a stream's later piece is rotated by where it is, not from 0
    later = on._project(x, None, torch.arange(100, 120))
    torch.testing.assert_close(later[3], rope(plain[3], torch.arange(100, 120)))


def test_fast_rotary_changes_outputs_but_not_position_zero():
    off, on = twin(True, fast_rotary=True)
    x = torch.randn(2, 27, D, dtype=torch.float64)
    with torch.no_grad():
        a, b = off(x), on(x)
    torch.testing.assert_close(a[:, 0], b[:, 0])      # position 0 is the identity rotation
    assert not torch.allclose(a[:, 1:], b[:, 1:])


def test_fast_rotary_reads_relative_positions_in_a_linear_memory(monkeypatch):
    """Linear fast weight, one chunk: the update's contribution to a read,
    sum_s lr_s v_s <R_s k_s, R_t q_t>, depends on t - s only, so shifting every position by the
    same offset leaves the change the update makes to each token's read as it was."""
    torch.manual_seed(1)
    layer = LaCTLayer(small(fast_weight="linear", fast_rotary=True, chunk_size=64),
                      causal=False).eval().double()
    monkeypatch.setattr(lact_layer, "retain_row_norms", lambda w, n: w)   # the plain step
    x = torch.randn(1, 12, D, dtype=torch.float64)
    W0 = layer.fast_kind.fuse(layer.initial_fast_weights(1))
    norms = (W0[0].norm(dim=2, keepdim=True),)

    def update_read(offset: int) -> torch.Tensor:
        _, _, _, fq, fk, fv, lr, _ = layer._project(x, None, torch.arange(offset, offset + 12))
        W, _ = layer._update(W0, norms, None, fk, fv, lr, None, 12, checked=False)
        return layer.fast_kind.apply(W, fq) - layer.fast_kind.apply(W0, fq)

    torch.testing.assert_close(update_read(0), update_read(37))
    assert not torch.allclose(update_read(0), torch.zeros_like(update_read(0)))


def test_fast_rotary_streams_like_the_offline_model():
    torch.manual_seed(2)
    model = build_model(ASR_MODELS, "lact", small(chunk_size=5, window_size=4, lact_causal=True,
                                             fast_rotary=True)).eval().double()
    feats = torch.randn(2, 90, 12, dtype=torch.float64)
    with torch.no_grad():
        offline, _ = model(feats)
        streamed = model.transcribe_streaming(feats, chunk_frames=13)
    torch.testing.assert_close(streamed, offline, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------- scale_leftover_step
def test_leftover_step_is_its_share_of_a_full_chunk():
    """With the option, a chunk of n < C tokens steps n/C as far: the same as the option off
    with every rate of that chunk multiplied by n/C (no momentum or Muon: the step is linear in
    the rates). A full chunk is untouched."""
    off, on = twin(True, scale_leftover_step=True)
    x = torch.randn(1, 3, D, dtype=torch.float64)
    _, _, _, _, fk, fv, lr, _ = off._project(x, None)
    W = off.fast_kind.fuse(off.initial_fast_weights(1))
    norms = tuple(w.norm(dim=2, keepdim=True) for w in W)
    got, _ = on._update(W, norms, None, fk, fv, lr, None, 3, checked=False)
    want, _ = off._update(W, norms, None, fk, fv, lr * 3 / C, None, 3, checked=False)
    for g, e in zip(got, want):
        torch.testing.assert_close(g, e)
    full, _ = on._update(W, norms, None, fk, fv, lr, None, C, checked=False)
    same, _ = off._update(W, norms, None, fk, fv, lr, None, C, checked=False)
    for g, e in zip(full, same):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


@pytest.mark.parametrize("causal", [True, False])
def test_leftover_option_changes_only_inputs_with_a_short_chunk(causal):
    off, on = twin(causal, scale_leftover_step=True)
    whole = torch.randn(1, 3 * C, D, dtype=torch.float64)
    with torch.no_grad():
        for a, b in zip(off(whole, return_fast=True)[1], on(whole, return_fast=True)[1]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        ragged = whole[:, : 2 * C + 3]
        a, b = off(ragged, return_fast=True)[1], on(ragged, return_fast=True)[1]
        before = off(whole[:, : 2 * C], return_fast=True)[1][0]
    assert not torch.allclose(a[0], b[0])
    # the short step moves the weights less than a full-size one
    assert (b[0] - before).norm() < (a[0] - before).norm()


@pytest.mark.parametrize("causal", [True, False])
def test_leftover_scale_follows_each_rows_own_length_under_padding(causal):
    _, on = twin(causal, scale_leftover_step=True)
    a = torch.randn(1, C + 3, D, dtype=torch.float64)
    batch = torch.randn(2, 3 * C, D, dtype=torch.float64) * 4
    batch[0, : C + 3] = a[0]
    valid = torch.arange(3 * C)[None] < torch.tensor([[C + 3], [3 * C]])
    with torch.no_grad():
        y_alone, W_alone = on(a, return_fast=True)
        y_batch, W_batch = on(batch, valid, return_fast=True)
    torch.testing.assert_close(y_batch[0, : C + 3], y_alone[0])
    heads = on.num_lact_heads
    # (causal: a chunk of padding only still renormalises the rows, a 1e-5 relative change)
    for wa, wb in zip(W_alone, W_batch):
        torch.testing.assert_close(wb[:heads], wa, rtol=1e-4, atol=1e-6)


def test_streaming_flush_applies_the_same_scaled_step():
    torch.manual_seed(3)
    layer = LaCTLayer(small(scale_leftover_step=True, fast_rotary=True), causal=True).eval().double()
    x = torch.randn(2, 2 * C + 5, D, dtype=torch.float64)
    with torch.no_grad():
        out, W = layer(x, return_fast=True)
        st, outs, pos = layer.init_state(2), [], 0
        for n in (3, 9, 4, 5):
            y, st = layer.step(x[:, pos: pos + n], st, pos)
            outs.append(y)
            pos += n
        st = layer.flush(st)
    torch.testing.assert_close(torch.cat(outs, dim=1), out)
    for i, w in enumerate(W):
        torch.testing.assert_close(st.fast[i], w)


# ---------------------------------------------------------------------------- bidirectional reads
def test_bidirectional_every_token_reads_the_state_after_the_last_chunk():
    """lact_causal false, 3 full chunks and a leftover of 3: the output of every token, in any
    chunk, is what reading the final weights W_n with no update gives; and W_n is the chunks'
    updates in order, the leftover last (chaining the layer chunk by chunk gives the same, without
    momentum, which one pass carries from chunk to chunk and a chain does not)."""
    torch.manual_seed(4)
    layer = LaCTLayer(small(window_size=2, use_momentum=False), causal=False).eval().double()
    x = torch.randn(1, 3 * C + 3, D, dtype=torch.float64)
    with torch.no_grad():
        out, W = layer(x, return_fast=True)
        with skip_fast_weight_updates(layer):
            read = layer(x, fast_init=W)       # every token reads W_n, nothing updated
        torch.testing.assert_close(out, read)
        chained = None
        for start in range(0, x.shape[1], C):
            _, chained = layer(x[:, start: start + C], fast_init=chained, return_fast=True)
    for a, b in zip(chained, W):   # to the retention's eps (1e-5 of a row's norm per step)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # and the first chunk's tokens depend on the last chunk (beyond the window)
    x2 = x.clone()
    x2[:, -1] += 3.0
    with torch.no_grad():
        assert not torch.allclose(layer(x2)[:, :C], out[:, :C])


def test_a_layer_pickled_before_the_options_existed_loads_and_computes_the_same():
    """Registered models are pickled whole: one saved before update_fast_weights, fast_rotary and
    scale_leftover_step existed must unpickle with the behaviour it was trained with."""
    import pickle

    torch.manual_seed(0)
    layer = LaCTLayer(LaCTAudioConfig(hidden_size=32, num_attention_heads=2, num_lact_heads=2,
                                      chunk_size=8, window_size=8), causal=True).eval()
    x = torch.randn(2, 20, 32)
    expected = layer(x)
    old = pickle.loads(pickle.dumps(layer))
    for name in ("update_fast_weights", "scale_leftover_step", "fast_rotary"):
        old.__dict__.pop(name, None)
        old._modules.pop(name, None)
    restored = pickle.loads(pickle.dumps(old))
    assert restored.update_fast_weights and restored.fast_rotary is None and not restored.scale_leftover_step
    assert torch.equal(restored(x), expected)
