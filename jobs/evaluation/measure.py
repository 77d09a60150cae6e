"""Wall time, peak memory and FLOPs of one call.

Peak memory: on CUDA the allocator's own peak counter. On the CPU the process's resident set
size says little (glibc keeps freed pages and hands them back out, so a forward pass that
allocates hundreds of MB can grow RSS by kilobytes); instead torch's profiler records every
allocation and free of torch's CPU allocator, and their running sum over time gives the peak
of live tensor bytes above what was live when the call started.
FLOPs: torch.utils.flop_counter.FlopCounterMode counts matmuls, convolutions and attention.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

# Kineto logs an error line about absent GPUs on every CPU-only profile; keep the output clean.
os.environ.setdefault("KINETO_LOG_LEVEL", "5")

_MEMORY_EVENT = "[memory]"


@dataclass
class Measurement:
    seconds: float
    peak_bytes: int | None   # above the memory in use before the call; None when not measured
    value: Any


def cpu_peak_allocated(fn: Callable[[], Any]) -> tuple[int, Any]:
    """(peak bytes of torch CPU tensors allocated during fn() and still live, fn()'s value)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, acc_events=True) as prof:
        value = fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == _MEMORY_EVENT),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:           # nbytes is negative for a free
        live += event.nbytes()
        peak = max(peak, live)
    return peak, value


def measure(fn: Callable[[], Any], device: str = "cpu", memory: bool = True) -> Measurement:
    """Run fn() once and measure it. On the CPU, memory=True profiles allocations, which slows
    the call: time a second call with memory=False when latency matters."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        started = time.perf_counter()
        value = fn()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        return Measurement(seconds, torch.cuda.max_memory_allocated() - base, value)
    started = time.perf_counter()
    if memory:
        peak, value = cpu_peak_allocated(fn)
    else:
        peak, value = None, fn()
    return Measurement(time.perf_counter() - started, peak, value)


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
