"""Log-mel features (AudioFeatureExtractor) and global CMVN (FeatureNormalizer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.audio import load_audio
from pipeline.features import AudioFeatureExtractor
from pipeline.normalizer import CMVNStats, FeatureNormalizer


def tone(freq, seconds=1.0, rate=16000):
    t = torch.arange(int(seconds * rate)) / rate
    return 0.3 * torch.sin(2 * torch.pi * freq * t)


def test_shape_and_frame_rate():
    fe = AudioFeatureExtractor()
    feats = fe.extract_features(tone(440.0), 16000)
    assert feats.shape == (101, 80) and feats.dtype == torch.float32     # 10 ms hop, centred frames
    assert fe.num_frames(16000) == 101
    assert fe.config()["win_length"] == 400 and fe.config()["hop_length"] == 160


def test_tone_energy_lands_in_the_right_mel_bin():
    fe = AudioFeatureExtractor()
    low = fe.extract_features(tone(300.0), 16000).mean(0).argmax().item()
    high = fe.extract_features(tone(3000.0), 16000).mean(0).argmax().item()
    fb = fe.mel.mel_scale.fb            # [n_freqs, n_mels]
    freqs = torch.linspace(0, 8000, fb.shape[0])
    assert abs(freqs[fb[:, low].argmax()] - 300) < 100
    assert abs(freqs[fb[:, high].argmax()] - 3000) < 250
    assert high > low


def test_other_rate_input_is_resampled_first():
    fe = AudioFeatureExtractor()
    a = fe.extract_features(tone(500.0, rate=16000), 16000)
    b = fe.extract_features(tone(500.0, rate=8000), 8000)
    assert a.shape == b.shape
    assert a.mean(0).argmax() == b.mean(0).argmax()


def test_silence_is_finite():
    feats = AudioFeatureExtractor().extract_features(torch.zeros(8000), 16000)
    assert torch.isfinite(feats).all()


def test_real_speech_features(realspeech_dir):
    flac = sorted((realspeech_dir / "LibriSpeech").rglob("*.flac"))[0]
    audio = load_audio(str(flac))
    feats = AudioFeatureExtractor()(audio.waveform)
    assert feats.shape == (len(audio.waveform) // 160 + 1, 80)
    assert np.isfinite(feats).all()
    # Speech varies over time far more than a stationary tone.
    assert feats.std(axis=0).mean() > 1.0


def test_cmvn_sums_merge_to_the_global_statistics():
    rng = np.random.default_rng(0)
    # 5000 frames: more than one of the blocks CMVNStats.of sums at a time
    parts = [rng.normal(3.0, 2.0, size=(n, 80)).astype(np.float32) for n in (50, 5000, 7)]
    merged = CMVNStats.of(parts[0]) + CMVNStats.of(parts[1]) + CMVNStats.of(parts[2])
    everything = np.concatenate(parts)
    mean, std = merged.mean_std()
    np.testing.assert_allclose(mean, everything.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, everything.std(0), rtol=1e-4)
    # Blocks are summed in float32: the sums still agree with float64 ones to ~1e-7.
    np.testing.assert_allclose(merged.sum, everything.sum(0, dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(merged.sumsq, np.square(everything, dtype=np.float64).sum(0), rtol=1e-6)
    assert CMVNStats.from_dict(merged.to_dict()).count == len(everything)


def test_normalizer_numpy_and_torch():
    normalizer = FeatureNormalizer(mean=np.arange(80.0), std=np.full(80, 2.0))
    x = np.tile(np.arange(80.0, dtype=np.float32), (5, 1)) + 4.0
    np.testing.assert_allclose(normalizer(x), np.full((5, 80), 2.0))
    assert normalizer(x).dtype == np.float32
    t = torch.from_numpy(x)[None]                     # [B, T, n_mels]
    out = normalizer(t)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 5, 80)
    torch.testing.assert_close(out, torch.full((1, 5, 80), 2.0))
    manifest = {"cmvn": normalizer.to_dict(["train-clean-100"])}
    again = FeatureNormalizer.from_manifest(manifest)
    np.testing.assert_allclose(again(x), normalizer(x))
    np.testing.assert_allclose(normalizer.denormalize(normalizer(x)), x, rtol=1e-6)
    with pytest.raises(TypeError):
        normalizer([1.0, 2.0])
