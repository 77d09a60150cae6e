"""Wall seconds per named phase: `done(name)` adds the time since the previous call (or the
start) to `name`, so a phase that recurs, like a shard task's per-utterance decode, adds up.
Preprocessing (driver and tasks), training runs and the demo report these in their summaries."""

from __future__ import annotations

import time


class PhaseTimer:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.started = self.mark = time.time()   # Unix time: training compares it with workers' timestamps

    def done(self, name: str) -> None:
        now = time.time()
        self.seconds[name] = self.seconds.get(name, 0.0) + (now - self.mark)
        self.mark = now

    def elapsed(self) -> float:
        return time.time() - self.started

    def rounded(self, digits: int = 3) -> dict[str, float]:
        return {name: round(s, digits) for name, s in self.seconds.items()}
