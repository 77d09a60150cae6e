"""Wall time, peak memory and FLOPs of one call.

Peak memory: on CUDA the allocator's own peak counter; on the CPU torch allocates outside
Python's allocator (tracemalloc does not see it), so a background thread samples the process's
resident set size (psutil) every few milliseconds and the peak above the starting RSS is kept.
FLOPs: torch.utils.flop_counter.FlopCounterMode counts matmuls, convolutions and attention.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import psutil
import torch


@dataclass
class Measurement:
    seconds: float
    peak_bytes: int        # above the memory in use before the call
    value: Any


class _RSSSampler(threading.Thread):
    def __init__(self, interval: float = 0.002):
        super().__init__(daemon=True)
        self.process = psutil.Process()
        self.interval = interval
        self.start_rss = self.process.memory_info().rss
        self.peak_rss = self.start_rss
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
        return self.peak_rss - self.start_rss


def measure(fn: Callable[[], Any], device: str = "cpu") -> Measurement:
    """Run fn() once and measure it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        started = time.perf_counter()
        value = fn()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        return Measurement(seconds, torch.cuda.max_memory_allocated() - base, value)
    sampler = _RSSSampler()
    sampler.start()
    started = time.perf_counter()
    try:
        value = fn()
    finally:
        seconds = time.perf_counter() - started
        peak = sampler.stop()
    return Measurement(seconds, max(peak, 0), value)


def count_flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of fn() as torch counts them (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def percentile(values: list[float], q: float) -> float:
    """q in [0, 100]; linear interpolation like numpy's default."""
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")
