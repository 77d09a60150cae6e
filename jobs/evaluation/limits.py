"""Run one measurement so that running out of memory or past a time limit becomes a recorded
status instead of an exception: a long-form recording that a model cannot decode is a result.

The time limit is a SIGALRM timer (main thread only): Python runs the handler between two
operations, and a forward pass is many operations, so it stops within one op of the limit.
Off the main thread the call runs to its end and is marked over the limit afterwards.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

OK = "ok"
OUT_OF_MEMORY = "out_of_memory"
TIME_LIMIT = "time_limit"


class _TimeLimitReached(Exception):
    pass


@dataclass
class Outcome:
    status: str          # ok | out_of_memory | time_limit
    value: Any           # fn()'s result when ok, else None
    seconds: float       # wall time spent, also when stopped
    detail: str = ""     # why it stopped

    @property
    def ok(self) -> bool:
        return self.status == OK


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA raises torch.OutOfMemoryError; the CPU allocator raises a RuntimeError or MemoryError."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def run_limited(fn: Callable[[], Any], time_limit: float | None) -> Outcome:
    """fn() under a wall-time limit (seconds, None = none); other exceptions propagate."""
    use_alarm = (time_limit is not None and threading.current_thread() is threading.main_thread())
    previous, outer_timer = None, (0.0, 0.0)
    started = time.perf_counter()
    if use_alarm:
        def on_alarm(signum, frame):
            raise _TimeLimitReached()
        previous = signal.signal(signal.SIGALRM, on_alarm)
        # An outer timer (e.g. pytest-timeout's) is put back afterwards with its remaining time.
        outer_timer = signal.setitimer(signal.ITIMER_REAL, max(time_limit, 1e-3))
    try:
        value = fn()
    except _TimeLimitReached:
        return Outcome(TIME_LIMIT, None, time.perf_counter() - started,
                       f"stopped after the {time_limit:g} s time limit")
    except BaseException as exc:   # noqa: BLE001 - only out-of-memory is turned into a status
        if not is_out_of_memory(exc):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return Outcome(OUT_OF_MEMORY, None, time.perf_counter() - started,
                       str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if outer_timer[0] > 0:
                left = outer_timer[0] - (time.perf_counter() - started)
                signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), outer_timer[1])
    seconds = time.perf_counter() - started
    if time_limit is not None and seconds > time_limit:
        return Outcome(TIME_LIMIT, None, seconds, f"took {seconds:.1f} s, over the {time_limit:g} s limit")
    return Outcome(OK, value, seconds)
