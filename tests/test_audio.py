"""Decode / downmix / resample / validate (pipeline.audio) on soundfile-written tones and real files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from pipeline.audio import (AudioError, DECODE_ERROR, EMPTY_AUDIO_FILE, NON_FINITE_SAMPLES, TOO_LONG, TOO_SHORT,
                            TRUNCATED_AUDIO, AUDIO_MISSING, load_audio, prepare_audio)


def tone(seconds=1.0, rate=16000, freq=440.0, channels=1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x, -x * 0.5], axis=1) if channels == 2 else x


def encode(data, rate, fmt="FLAC", subtype=None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def test_16k_mono_flac_is_kept_as_is():
    x = tone(1.0)
    audio = prepare_audio(encode(x, 16000), "a.flac")
    assert audio.sample_rate == 16000 and audio.repairs == []
    assert audio.waveform.dtype == np.float32 and audio.waveform.shape == (16000,)
    assert np.abs(audio.waveform - x).max() < 1e-3      # 16-bit quantisation only
    assert audio.duration == pytest.approx(1.0)


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_other_rates_are_resampled_to_16k(rate):
    audio = prepare_audio(encode(tone(1.0, rate, freq=440.0), rate), "a.flac")
    assert audio.repairs == [f"resampled_{rate}"] and audio.original_sample_rate == rate
    assert len(audio.waveform) == pytest.approx(16000, abs=2)
    # The tone stays a 440 Hz tone after resampling.
    spectrum = np.abs(np.fft.rfft(audio.waveform))
    assert np.fft.rfftfreq(len(audio.waveform), 1 / 16000)[spectrum.argmax()] == pytest.approx(440, abs=2)


def test_stereo_is_downmixed():
    x = tone(0.5, channels=2)
    audio = prepare_audio(encode(x, 16000, "WAV", "FLOAT"), "s.wav")
    assert audio.repairs == ["downmixed_2ch"] and audio.original_channels == 2
    np.testing.assert_allclose(audio.waveform, x.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_rejected(bad_value):
    x = tone(0.5)
    x[100] = bad_value
    with pytest.raises(AudioError) as err:
        prepare_audio(encode(x, 16000, "WAV", "FLOAT"), "n.wav")
    assert err.value.reason == NON_FINITE_SAMPLES


def test_length_limits():
    with pytest.raises(AudioError) as err:
        prepare_audio(encode(tone(0.05), 16000, "WAV"), "short.wav")
    assert err.value.reason == TOO_SHORT
    with pytest.raises(AudioError) as err:
        prepare_audio(encode(tone(3.0), 16000), "long.flac", max_seconds=2.0)
    assert err.value.reason == TOO_LONG
    assert prepare_audio(encode(tone(3.0), 16000), "ok.flac", max_seconds=3.5).duration == pytest.approx(3.0)


def test_unreadable_bytes():
    good = encode(tone(2.0), 16000)
    cases = {b"": EMPTY_AUDIO_FILE, b"this is a text file, not audio\n" * 30: DECODE_ERROR,
             np.random.default_rng(0).bytes(4000): DECODE_ERROR}
    for data, reason in cases.items():
        with pytest.raises(AudioError) as err:
            prepare_audio(data, "x.flac")
        assert err.value.reason == reason
    with pytest.raises(AudioError) as err:
        prepare_audio(good[: len(good) // 2], "t.flac")
    assert err.value.reason in (DECODE_ERROR, TRUNCATED_AUDIO)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError) as err:
        load_audio(str(tmp_path / "nope.flac"))
    assert err.value.reason == AUDIO_MISSING


def test_real_librispeech_flac_and_common_voice_mp3(realspeech_dir):
    flac = next(iter(sorted((realspeech_dir / "LibriSpeech").rglob("*.flac"))))
    audio = load_audio(str(flac))
    assert audio.original_sample_rate == 16000 and audio.repairs == [] and audio.duration > 1.0
    assert np.isfinite(audio.waveform).all() and 0.01 < np.abs(audio.waveform).max() <= 1.0
    mp3 = next(iter((realspeech_dir / "CommonVoice").rglob("*.mp3")))
    audio = load_audio(str(mp3))
    assert audio.original_sample_rate == 48000 and audio.repairs == ["resampled_48000"]
    assert audio.sample_rate == 16000 and audio.duration == pytest.approx(114048 / 48000, abs=0.01)
