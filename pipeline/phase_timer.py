"""Wall seconds per step of a driver, in order: `done(name)` closes the step that ran since the
previous one. Preprocessing and training runs report these in their summaries."""

from __future__ import annotations

import time


class PhaseTimer:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.mark = time.time()

    def done(self, name: str) -> None:
        now = time.time()
        self.seconds[name] = round(now - self.mark, 3)
        self.mark = now
