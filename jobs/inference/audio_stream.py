"""One recording as a stream of normalised log-mel chunks, in bounded memory.

The file is decoded block by block (soundfile reads local files and fsspec file objects alike),
downmixed, resampled and turned into log-mel frames as it is read, so a 3-hour recording costs
the memory of one block. The repairs are preprocessing's (pipeline.audio): mono, the model's rate;
errors are pipeline.audio's AudioError with its reason codes. Block boundaries do not change the
result: resampling keeps input context across blocks and the log-mel frames are cut from a
running buffer with the same reflect padding as the whole-file extractor (checked in the tests).
"""

from __future__ import annotations

import io
import math
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import soundfile as sf
import torch
import torchaudio

from pipeline import audio as pa
from pipeline import uri as uris

BLOCK_SECONDS = 10.0


@contextmanager
def open_audio(source: str | bytes, name: str = ""):
    """A soundfile.SoundFile over a URI or in-memory bytes; AudioError when it cannot be read."""
    name = name or (source if isinstance(source, str) else "upload")
    handle = None
    try:
        if isinstance(source, bytes):
            if not source:
                raise pa.AudioError(pa.EMPTY_AUDIO_FILE, f"{name} is 0 bytes")
            handle = io.BytesIO(source)
        else:
            fs, path = uris.filesystem(source)
            try:
                handle = fs.open(path, "rb")
                size = fs.size(path)
            except FileNotFoundError as exc:
                raise pa.AudioError(pa.AUDIO_MISSING, f"{name} does not exist") from exc
            if not size:
                raise pa.AudioError(pa.EMPTY_AUDIO_FILE, f"{name} is 0 bytes")
        try:
            f = sf.SoundFile(handle)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise pa.AudioError(pa.DECODE_ERROR, f"{name}: {pa._OBJECT_REPR.sub('audio data', str(exc))}") from exc
        with f:
            yield f
    finally:
        if handle is not None:
            handle.close()


class BlockResampler:
    """Resamples a signal given in blocks; the output equals resampling the whole signal.

    Input is consumed in whole units of orig/gcd samples (each gives exactly new/gcd outputs) and
    each piece is resampled with `context` input samples on both sides, which the output drops.
    """

    def __init__(self, orig: int, new: int, min_context: int = 512):
        g = math.gcd(orig, new)
        self.orig, self.new = orig, new
        self.unit_in, self.unit_out = orig // g, new // g
        self.context = self.unit_in * math.ceil(min_context / self.unit_in)
        self.transform = torchaudio.transforms.Resample(orig, new)
        self.pending = np.zeros(0, np.float32)   # [context of the past] + not yet resampled
        self.left = 0                            # how many samples of `pending` are past context

    def _resample(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.transform(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    def push(self, block: np.ndarray) -> np.ndarray:
        if self.orig == self.new:
            return block
        self.pending = np.concatenate([self.pending, block])
        ready = (len(self.pending) - self.left - self.context) // self.unit_in * self.unit_in
        if ready <= 0:
            return np.zeros(0, np.float32)
        end = self.left + ready
        out = self._resample(self.pending[: end + self.context])
        skip = self.left // self.unit_in * self.unit_out
        out = out[skip: skip + ready // self.unit_in * self.unit_out]
        keep_from = max(0, end - self.context)
        self.pending, self.left = self.pending[keep_from:], end - keep_from
        return out

    def finish(self) -> np.ndarray:
        if self.orig == self.new or len(self.pending) <= self.left:
            return np.zeros(0, np.float32)
        out = self._resample(self.pending)
        skip = self.left // self.unit_in * self.unit_out
        rest = len(self.pending) - self.left
        return out[skip: skip + math.ceil(rest * self.new / self.orig)]


class StreamingLogMel:
    """Log-mel frames of a signal given in blocks, equal to AudioFeatureExtractor on the whole
    signal (torchaudio's centred frames: reflect padding of n_fft/2 at both ends)."""

    def __init__(self, extractor):
        self.extractor = extractor
        self.n_fft, self.hop = extractor.n_fft, extractor.hop_length
        self.half = self.n_fft // 2
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=extractor.sample_rate, n_fft=extractor.n_fft, win_length=extractor.win_length,
            hop_length=extractor.hop_length, n_mels=extractor.n_mels, power=2.0, center=False)
        self.buffer = np.zeros(0, np.float32)     # padded signal from the next frame's start
        self.started = False
        self.tail = np.zeros(0, np.float32)       # the signal's last half+1 samples (end padding)

    def _frames(self) -> torch.Tensor:
        n = (len(self.buffer) - self.n_fft) // self.hop + 1 if len(self.buffer) >= self.n_fft else 0
        if n <= 0:
            return torch.zeros(0, self.extractor.n_mels)
        with torch.inference_mode():
            spec = self.mel(torch.from_numpy(np.ascontiguousarray(self.buffer[: (n - 1) * self.hop + self.n_fft])))
            frames = spec.add_(self.extractor.log_floor).log_().transpose(0, 1).contiguous()
        self.buffer = self.buffer[n * self.hop:]
        return frames

    def push(self, samples: np.ndarray) -> torch.Tensor:
        self.tail = np.concatenate([self.tail, samples])[-(self.half + 1):]
        self.buffer = np.concatenate([self.buffer, samples])
        if not self.started:
            if len(self.buffer) < self.half + 1:
                return torch.zeros(0, self.extractor.n_mels)
            self.buffer = np.concatenate([self.buffer[1: self.half + 1][::-1], self.buffer])
            self.started = True
        return self._frames()

    def finish(self) -> torch.Tensor:
        if not self.started:
            raise pa.AudioError(pa.TOO_SHORT, "shorter than one analysis window")
        self.buffer = np.concatenate([self.buffer, self.tail[:-1][::-1][: self.half]])
        return self._frames()


class FeatureStream:
    """Iterates normalised log-mel chunks [n, mel] of a recording; `seconds_read` grows as it goes.

    Raises AudioError for what preprocessing would quarantine (unreadable, truncated, NaN, shorter
    than pipeline.audio.MIN_SECONDS); any length above that is fine."""

    def __init__(self, source: str | bytes, model, name: str = "", block_seconds: float = BLOCK_SECONDS):
        self.source, self.name = source, name or (source if isinstance(source, str) else "upload")
        self.extractor = model.feature_extractor()
        self.normalizer = model.normalizer()
        self.block_seconds = block_seconds
        self.duration: float | None = None       # from the header, before reading
        self.seconds_read = 0.0
        self.repairs: list[str] = []

    def __iter__(self) -> Iterator[torch.Tensor]:
        with open_audio(self.source, self.name) as f:
            rate, channels = f.samplerate, f.channels
            self.duration = f.frames / rate if f.frames > 0 else None
            if channels > 1:
                self.repairs.append(f"downmixed_{channels}ch")
            if rate != self.extractor.sample_rate:
                self.repairs.append(f"resampled_{rate}")
            resampler = BlockResampler(rate, self.extractor.sample_rate)
            mel = StreamingLogMel(self.extractor)
            total = 0
            try:
                blocks = f.blocks(blocksize=max(1, int(self.block_seconds * rate)), dtype="float32", always_2d=True)
                for block in blocks:
                    if not np.isfinite(block).all():
                        raise pa.AudioError(pa.NON_FINITE_SAMPLES, f"{self.name}: NaN/Inf samples")
                    total += len(block)
                    self.seconds_read = total / rate
                    mono = block.mean(axis=1, dtype=np.float32) if channels > 1 else block[:, 0]
                    frames = mel.push(resampler.push(mono))
                    if len(frames):
                        yield self.normalizer(frames)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise pa.AudioError(pa.DECODE_ERROR, f"{self.name}: {exc}") from exc
            if f.frames > 0 and total < f.frames and not str(self.name).lower().endswith(".mp3"):
                raise pa.AudioError(pa.TRUNCATED_AUDIO, f"{self.name}: header says {f.frames} frames, decoded {total}")
            if total / rate < pa.MIN_SECONDS:
                raise pa.AudioError(pa.TOO_SHORT, f"{self.name}: {total / rate:.3f} s < {pa.MIN_SECONDS} s")
            self.duration = total / rate
            tail = mel.push(resampler.finish())
            last = torch.cat([tail, mel.finish()])
            if len(last):
                yield self.normalizer(last)
