"""ASR streaming: chunked streaming_inference == block-causal offline output; state
save/resume; OOM retry with halved chunks; speaker adaptation carry and reset."""

import pytest
import torch

from models import LaCTAudioConfig, LaCTOutOfMemoryError, LaCTState, build_model
from models.factory import ASR_MODELS


def causal_asr(seed=0, **kw):
    torch.manual_seed(seed)
    base = dict(hidden_size=32, num_layers=2, num_attention_heads=4, num_lact_heads=2, chunk_size=5,
                window_size=4, vocab_size=11, dropout=0.0, mel_bins=12, lact_causal=True)
    base.update(kw)
    # float64: streaming and offline sum in different orders; in double any real mismatch shows
    return build_model(ASR_MODELS, "lact", LaCTAudioConfig(**base)).eval().double()


@pytest.mark.parametrize("T", [83, 96])
def test_streaming_equals_offline_block_causal_output(T):
    model = causal_asr()
    feats = torch.randn(2, T, 12, dtype=torch.float64)
    with torch.no_grad():
        offline, lengths = model(feats)
        state, outs, start = None, [], 0
        for n in [1, 7, 4, 13, 2, 30, 9, 100]:
            piece = feats[:, start:start + n]
            start += piece.shape[1]
            logits, state = model.streaming_inference(piece, state, final=start >= T)
            outs.append(logits)
            if start >= T:
                break
    streamed = torch.cat(outs, dim=1)
    assert streamed.shape == offline.shape and int(lengths[0]) == -(-T // 4)
    torch.testing.assert_close(streamed, offline, rtol=1e-9, atol=1e-9)


def test_state_saves_and_resumes_in_a_fresh_model(tmp_path):
    model = causal_asr(seed=1)
    feats = torch.randn(1, 120, 12, dtype=torch.float64)
    with torch.no_grad():
        offline, _ = model(feats)
        first, state = model.streaming_inference(feats[:, :50])
        state.save(tmp_path / "stream.pt")
        twin = causal_asr(seed=99)
        twin.load_state_dict(model.state_dict())
        resumed = LaCTState.load(tmp_path / "stream.pt")
        assert resumed.position == state.position == first.shape[1]
        second, _ = twin.streaming_inference(feats[:, 50:], resumed, final=True)
    torch.testing.assert_close(torch.cat([first, second], 1), offline, rtol=1e-9, atol=1e-9)


def test_streaming_state_size_stays_flat():
    model = causal_asr(seed=2)
    sizes = []
    with torch.no_grad():
        state = None
        for i in range(8):
            _, state = model.streaming_inference(torch.randn(1, 40, 12, dtype=torch.float64), state)  # 10 tokens = 2 chunks
            sizes.append(state.num_bytes())
    assert len(set(sizes[1:])) == 1


def test_streaming_rejects_bidirectional_models_and_finished_streams():
    bidir = causal_asr(lact_causal=False)
    with pytest.raises(ValueError, match="lact_causal"):
        bidir.streaming_inference(torch.randn(1, 8, 12, dtype=torch.float64))
    model = causal_asr()
    _, state = model.streaming_inference(torch.randn(1, 8, 12, dtype=torch.float64), final=True)
    with pytest.raises(ValueError, match="finished"):
        model.streaming_inference(torch.randn(1, 8, 12, dtype=torch.float64), state)


def _oom_above(model, max_tokens):
    def hook(module, args):
        if args[0].shape[1] > max_tokens:
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")
    return model.head.register_forward_pre_hook(hook)


def test_oom_in_inference_retries_with_halved_chunks():
    model = causal_asr(seed=3)
    feats = torch.randn(2, 150, 12, dtype=torch.float64)
    with torch.no_grad():
        offline, _ = model(feats)
    handle = _oom_above(model, max_tokens=6)       # pieces of > 24 frames "run out of memory"
    try:
        logits = model.transcribe_streaming(feats, chunk_frames=80, min_chunk_frames=8)
    finally:
        handle.remove()
    assert model.error_handler.oom_retries == 2    # 80 -> 40 -> 20 frames
    torch.testing.assert_close(logits, offline, rtol=1e-9, atol=1e-9)


def test_oom_below_the_floor_raises_a_clear_error():
    model = causal_asr(seed=4)
    handle = _oom_above(model, max_tokens=1)
    try:
        with pytest.raises(LaCTOutOfMemoryError, match="even with chunk size 16 .floor 16."):
            model.transcribe_streaming(torch.randn(1, 100, 12, dtype=torch.float64), chunk_frames=64, min_chunk_frames=16)
    finally:
        handle.remove()


@pytest.mark.parametrize("causal", [True, False])
def test_adapt_to_speaker_carries_fast_weights_and_resets(causal):
    model = causal_asr(seed=5, lact_causal=causal)
    utts = [torch.randn(40, 12, dtype=torch.float64), torch.randn(52, 12, dtype=torch.float64)]
    probe = torch.randn(1, 60, 12, dtype=torch.float64)
    with torch.no_grad():
        before, _ = model(probe)
        model.adapt_to_speaker(utts[:1])
        after_one = [tuple(w.clone() for w in f) for f in model.speaker_fast_weights]
        model.adapt_to_speaker(utts[1:])                  # continues from the first utterance
        carried = model.speaker_fast_weights
        adapted, _ = model(probe)
        model.reset_speaker()
        model.adapt_to_speaker(utts[1:])                  # same utterance from scratch
        fresh = model.speaker_fast_weights
        model.reset_speaker()
        reset, _ = model(probe)
    assert not torch.allclose(carried[0][0], fresh[0][0])
    assert not torch.allclose(carried[0][0], after_one[0][0])
    assert not torch.allclose(adapted, before)
    torch.testing.assert_close(reset, before)
    # the adapted weights keep each row's norm (weight-norm retention)
    slow = model.encoder.blocks[0].mixer.w0
    torch.testing.assert_close(carried[0][0].norm(dim=2), slow.norm(dim=2), rtol=1e-4, atol=1e-4)


def test_adapted_speaker_weights_seed_streams_too():
    model = causal_asr(seed=6)
    model.adapt_to_speaker(torch.randn(2, 30, 12, dtype=torch.float64), torch.tensor([30, 22]))
    feats = torch.randn(1, 44, 12, dtype=torch.float64)
    with torch.no_grad():
        offline, _ = model(feats)
        streamed = model.transcribe_streaming(feats, chunk_frames=12)
    torch.testing.assert_close(streamed, offline, rtol=1e-9, atol=1e-9)


def test_adapted_state_survives_save_and_load_into_a_fresh_model(tmp_path):
    """A speaker's adaptation is part of LaCTState: saved with a stream, loaded in another model
    (same trained weights, never adapted), it gives the adapted model's offline and streamed
    output; reset forgets it again."""
    model = causal_asr(seed=5)
    probe = torch.randn(1, 60, 12, dtype=torch.float64)
    with torch.no_grad():
        model.adapt_to_speaker([torch.randn(36, 12, dtype=torch.float64), torch.randn(44, 12, dtype=torch.float64)])
        adapted, _ = model(probe)
        first, state = model.streaming_inference(probe[:, :28])
        assert state.adapted is not None and len(state.adapted) == 2
        state.save(tmp_path / "speaker.pt")
        twin = causal_asr(seed=99)
        twin.load_state_dict(model.state_dict())
        plain, _ = twin(probe)
        loaded = LaCTState.load(tmp_path / "speaker.pt")
        for mine, theirs in zip(state.adapted, loaded.adapted):
            for a, b in zip(mine, theirs):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
        twin.restore_adaptation(loaded)
        torch.testing.assert_close(twin(probe)[0], adapted, rtol=1e-9, atol=1e-9)
        second, _ = twin.streaming_inference(probe[:, 28:], loaded, final=True)
        torch.testing.assert_close(torch.cat([first, second], 1), adapted, rtol=1e-9, atol=1e-9)
        twin.reset_speaker()
        torch.testing.assert_close(twin(probe)[0], plain, rtol=0, atol=0)
    assert not torch.allclose(adapted, plain)
