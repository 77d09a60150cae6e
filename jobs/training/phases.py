"""Wall seconds of a training run's phases (validate, MLflow start, dataset, the parts of fit,
the finish steps), reported in its summary as `phase_seconds`."""

from __future__ import annotations

import time

from pipeline.phase_timer import PhaseTimer


class Phases(PhaseTimer):
    """Wall seconds of the driver's steps, and of the parts of `fit()` the workers timestamp."""

    def split_fit(self, fit_started: float, metrics: dict) -> None:
        """fit() = start (controller, placement group, workers, imports) + worker set-up (model,
        dev set, first batch) + steps + end (last report to fit's return). Workers send Unix times."""
        entered, first, last = (metrics.get(k) for k in ("loop_entered_at", "first_step_at",
                                                         "last_report_at"))
        now = time.time()
        if entered and first and last:
            self.seconds.update(fit_start=round(entered - fit_started, 3),
                                worker_setup=round(first - entered, 3),
                                steps=round(last - first, 3), fit_end=round(now - last, 3))
        else:
            self.seconds["fit"] = round(now - fit_started, 3)
        self.mark = now
