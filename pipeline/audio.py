"""Decode, downmix, resample and validate one audio file.

Audio is read with soundfile (FLAC, WAV, MP3, OGG) from bytes fetched through fsspec, so local
paths and s3:// URIs behave the same. Everything that can be repaired is repaired (stereo is
downmixed, 8 kHz / 44.1 kHz / 48 kHz are resampled to 16 kHz); everything else raises
`AudioError` with a short machine-readable reason that preprocessing puts in the quarantine table.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
import torch
import torchaudio

from pipeline.uri import filesystem

TARGET_SAMPLE_RATE = 16000
MIN_SECONDS = 0.1
DEFAULT_MAX_SECONDS = 35.0   # LibriSpeech's longest utterances are ~35 s

# Quarantine reasons raised here (see pipeline.quarantine for the full list).
AUDIO_MISSING = "audio_missing"
EMPTY_AUDIO_FILE = "empty_audio_file"
DECODE_ERROR = "decode_error"
TRUNCATED_AUDIO = "truncated_audio"
NON_FINITE_SAMPLES = "non_finite_samples"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"

_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


class AudioError(Exception):
    """An audio file that cannot be used; `reason` is the quarantine reason code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class DecodedAudio:
    waveform: np.ndarray            # float32 [samples], mono, TARGET_SAMPLE_RATE
    sample_rate: int                # always TARGET_SAMPLE_RATE after prepare_audio
    original_sample_rate: int
    original_channels: int
    repairs: list[str] = field(default_factory=list)   # e.g. ["downmixed_2ch", "resampled_44100"]

    @property
    def duration(self) -> float:
        return len(self.waveform) / self.sample_rate


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    try:
        with fs.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError as exc:
        raise AudioError(AUDIO_MISSING, f"{uri} does not exist") from exc


def decode(data: bytes, name: str = "") -> tuple[np.ndarray, int]:
    """Bytes -> (float32 [samples, channels], sample_rate). Raises AudioError when unreadable."""
    if len(data) == 0:
        raise AudioError(EMPTY_AUDIO_FILE, f"{name} is 0 bytes")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            expected = f.frames
            samples = f.read(dtype="float32", always_2d=True)
            sample_rate = f.samplerate
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        # libsndfile names the in-memory file by its address; drop it so reruns give identical details.
        message = _OBJECT_REPR.sub("audio data", str(exc))
        raise AudioError(DECODE_ERROR, f"{name}: {message}") from exc
    # A truncated file can decode "successfully" with fewer frames than its header promises.
    # (MP3 headers only estimate the length, so that check is for lossless formats.)
    if expected > 0 and len(samples) < expected and not name.lower().endswith(".mp3"):
        raise AudioError(TRUNCATED_AUDIO, f"{name}: header says {expected} frames, decoded {len(samples)}")
    if len(samples) == 0:
        raise AudioError(DECODE_ERROR, f"{name}: no audio frames")
    return samples, sample_rate


_resamplers: dict[tuple[int, int], torchaudio.transforms.Resample] = {}


def resample(waveform: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling with torchaudio; the kernel is cached per rate pair."""
    if orig_rate == new_rate:
        return waveform
    key = (orig_rate, new_rate)
    if key not in _resamplers:
        _resamplers[key] = torchaudio.transforms.Resample(orig_rate, new_rate)
    with torch.inference_mode():
        out = _resamplers[key](torch.from_numpy(np.ascontiguousarray(waveform)))
    return out.numpy()


def prepare_audio(
    data: bytes,
    name: str = "",
    *,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    sample_rate: int = TARGET_SAMPLE_RATE,
) -> DecodedAudio:
    """Decode + downmix + resample + validate. Raises AudioError with a quarantine reason."""
    samples, orig_rate = decode(data, name)
    return validate_and_resample(samples, orig_rate, name, min_seconds=min_seconds, max_seconds=max_seconds,
                                 sample_rate=sample_rate)


def validate_and_resample(
    samples: np.ndarray,
    orig_rate: int,
    name: str = "",
    *,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    sample_rate: int = TARGET_SAMPLE_RATE,
) -> DecodedAudio:
    """Decoded samples [samples, channels] -> checked mono audio at sample_rate (see prepare_audio)."""
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise AudioError(NON_FINITE_SAMPLES, f"{name}: {bad} NaN/Inf samples")
    # Check the length before resampling so a 3-hour file is rejected without being processed.
    seconds = len(samples) / orig_rate
    if seconds < min_seconds:
        raise AudioError(TOO_SHORT, f"{name}: {seconds:.3f} s < {min_seconds} s")
    if seconds > max_seconds:
        raise AudioError(TOO_LONG, f"{name}: {seconds:.1f} s > {max_seconds} s")
    repairs = []
    channels = samples.shape[1]
    if channels > 1:
        repairs.append(f"downmixed_{channels}ch")
    mono = samples.mean(axis=1, dtype=np.float32) if channels > 1 else samples[:, 0]
    if orig_rate != sample_rate:
        repairs.append(f"resampled_{orig_rate}")
        mono = resample(mono, orig_rate, sample_rate)
    return DecodedAudio(
        waveform=np.ascontiguousarray(mono, dtype=np.float32),
        sample_rate=sample_rate,
        original_sample_rate=orig_rate,
        original_channels=channels,
        repairs=repairs,
    )


def load_audio(uri: str, **kwargs) -> DecodedAudio:
    """Read a local path or s3:// URI and prepare it (see prepare_audio)."""
    return prepare_audio(read_bytes(uri), uri, **kwargs)
