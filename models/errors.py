"""LaCTErrorHandler: the seed's recovery rules for fast-weight models.

- A fast-weight update that produces NaN/Inf is dropped for that sequence and head (the
  previous weights and momentum are kept), counted, and reported; the forward pass continues.
- Out of memory during chunked inference: retry the same piece with half the chunk size,
  down to a floor, then raise LaCTOutOfMemoryError with what to change.
"""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

import torch

logger = logging.getLogger(__name__)
T = TypeVar("T")


class LaCTOutOfMemoryError(RuntimeError):
    """Inference ran out of memory even at the smallest allowed chunk size."""


class LaCTErrorHandler:
    def __init__(self) -> None:
        self._dropped = torch.zeros((), dtype=torch.long)
        self._reported = 0
        self.oom_retries = 0

    # ------------------------------------------------------------------ numerical instability
    def keep_finite(self, old: tuple[torch.Tensor, ...], new: tuple[torch.Tensor, ...]
                    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Per row b (sequence x head) of [b, ...] tensors: take `new` where every new tensor is
        finite, else keep `old`. Returns (chosen tensors, ok [b] bool)."""
        ok = torch.ones(new[0].shape[0], dtype=torch.bool, device=new[0].device)
        for t in new:
            ok = ok & torch.isfinite(t.detach()).flatten(1).all(dim=1)
        chosen = tuple(torch.where(ok.view(-1, *([1] * (n.dim() - 1))), n, o) for o, n in zip(old, new))
        self._dropped = self._dropped.to(ok.device) + (~ok).sum()
        return chosen, ok

    @property
    def dropped_updates(self) -> int:
        """How many (sequence, head, chunk) fast-weight updates were dropped so far."""
        return int(self._dropped)

    def report(self) -> int:
        """Log the updates dropped since the last report; returns that number."""
        total = self.dropped_updates
        new = total - self._reported
        if new > 0:
            logger.warning("LaCT: dropped %d non-finite fast-weight update(s) (previous weights kept); "
                           "%d in total", new, total)
        self._reported = total
        return new

    def reset(self) -> None:
        self._dropped = torch.zeros((), dtype=torch.long)
        self._reported = 0
        self.oom_retries = 0

    # ------------------------------------------------------------------ memory overflow
    def handle_memory_overflow(self, current_chunk: int, floor: int) -> int:
        """Halved chunk size to retry with, or LaCTOutOfMemoryError when below the floor."""
        smaller = current_chunk // 2
        if smaller < floor:
            raise LaCTOutOfMemoryError(
                f"out of memory during inference even with chunk size {current_chunk} "
                f"(floor {floor}); use a smaller batch, shorter inputs or a lower floor")
        self.oom_retries += 1
        logger.warning("LaCT: out of memory with chunk size %d, retrying with %d", current_chunk, smaller)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return smaller

    def run_with_oom_retry(self, step: Callable[[int], T], chunk: int, floor: int) -> tuple[T, int]:
        """Call step(chunk) and on torch.OutOfMemoryError retry with halved chunks.
        `step` must leave no partial effects when it raises. Returns (result, chunk used)."""
        while True:
            try:
                return step(chunk), chunk
            except torch.OutOfMemoryError:
                chunk = self.handle_memory_overflow(chunk, floor)
