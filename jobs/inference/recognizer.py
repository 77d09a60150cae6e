"""Normalised log-mel chunks -> CTC log-probability chunks [m, V], for any recording length.

A block-causal model streams: each chunk goes through `streaming_inference` with the LaCTState
the previous one left, which gives exactly the offline output at a memory cost that does not
grow with the length. Every other model (bidirectional LaCT, full attention, ...) reads the
recording in windows of `window_frames` that overlap by `overlap_frames`; of each window only
the middle is kept (half the overlap is cut at each inner edge, where the context is one-sided),
so consecutive windows tile the recording exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

from jobs.inference.model import SUBSAMPLING

STREAM_CHUNK_FRAMES = 400       # 4 s of features per streaming step


@dataclass
class WindowConfig:
    window_seconds: float = 20.0
    overlap_seconds: float = 2.0

    def frames(self, frame_rate: float) -> tuple[int, int]:
        """(window, overlap) in feature frames; window a multiple of the subsampling, half the
        overlap too, so the kept parts fall on whole encoder frames."""
        unit = 2 * SUBSAMPLING
        window = max(unit, int(round(self.window_seconds * frame_rate / unit)) * unit)
        overlap = int(round(self.overlap_seconds * frame_rate / unit)) * unit
        if not 0 <= overlap < window:
            raise ValueError(f"the overlap ({self.overlap_seconds} s) must be shorter than the window "
                             f"({self.window_seconds} s)")
        return window, overlap


def _rechunk(chunks: Iterable[torch.Tensor], size: int) -> Iterator[tuple[torch.Tensor, bool]]:
    """Feature chunks -> (chunks of `size` frames, is_last); the last may be shorter."""
    pending: list[torch.Tensor] = []
    held = 0
    ready = None
    for chunk in chunks:
        pending.append(chunk)
        held += chunk.shape[0]
        while held >= size:
            joined = torch.cat(pending)
            piece, rest = joined[:size], joined[size:]
            pending, held = ([rest] if len(rest) else []), len(rest)
            if ready is not None:
                yield ready, False
            ready = piece
    rest = torch.cat(pending) if pending else None
    if rest is not None and len(rest):
        if ready is not None:
            yield ready, False
        yield rest, True
    elif ready is not None:
        yield ready, True


@torch.no_grad()
def stream_log_probs(model: torch.nn.Module, chunks: Iterable[torch.Tensor],
                     chunk_frames: int = STREAM_CHUNK_FRAMES) -> Iterator[torch.Tensor]:
    state = None
    device = model.head.weight.device
    for piece, last in _rechunk(chunks, chunk_frames):
        logits, state = model.streaming_inference(piece[None].to(device), state, final=last)
        if logits.shape[1]:
            yield torch.log_softmax(logits[0].float(), dim=-1).cpu()


@torch.no_grad()
def window_log_probs(model: torch.nn.Module, chunks: Iterable[torch.Tensor],
                     window: int, overlap: int) -> Iterator[torch.Tensor]:
    half = overlap // 2
    buffer = torch.zeros(0, model.config.mel_bins)
    first = True

    def run(features: torch.Tensor, keep_from: int, keep_to: int | None) -> torch.Tensor:
        device = model.head.weight.device
        logits, lengths = model(features[None].to(device), torch.tensor([features.shape[0]], device=device))
        n = int(lengths[0])
        lo = keep_from // SUBSAMPLING
        hi = n if keep_to is None else min(n, keep_to // SUBSAMPLING)
        return torch.log_softmax(logits[0, lo:hi].float(), dim=-1).cpu()

    for chunk in chunks:
        buffer = torch.cat([buffer, chunk])
        # a window runs only once something follows it, so the last window is always the one
        # that reaches the end (and keeps everything to the end)
        while buffer.shape[0] > window:
            yield run(buffer[:window], 0 if first else half, window - half)
            buffer = buffer[window - overlap:]
            first = False
    if buffer.shape[0]:
        yield run(buffer, 0 if first else half, None)


def log_probs(model, chunks: Iterable[torch.Tensor], windows: WindowConfig, frame_rate: float,
              streaming: bool) -> Iterator[torch.Tensor]:
    if streaming:
        return stream_log_probs(model, chunks)
    window, overlap = windows.frames(frame_rate)
    return window_log_probs(model, chunks, window, overlap)
