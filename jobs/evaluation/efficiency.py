"""Efficiency against input length, every model on the same inputs: latency of one forward
pass, peak memory, real-time factor and FLOPs.

Inputs are the split's utterances joined to the requested length (ASR: seconds of features;
generation: audio tokens). A length a model cannot run (out of memory, time limit) is recorded
with its status, and longer lengths are not tried for that model.
"""

from __future__ import annotations

import torch

from jobs.evaluation.data import EvalSplit, concatenate
from jobs.evaluation.limits import run_limited
from jobs.evaluation.measure import count_flops, measure
from jobs.tasks import task_named

DEFAULT_SECONDS = (5.0, 15.0, 30.0, 60.0)


def _input(split: EvalSplit, unit: str, length: float, tokens_per_second: float | None):
    """(input, its row, its seconds) for one length: seconds of features, or audio tokens."""
    if unit == "seconds":
        x, _ = concatenate(split, max(1, int(length * split.frame_rate)))
        return x, {"seconds": length}, x.shape[0] / split.frame_rate
    x, _ = concatenate(split, max(2, int(length)), field="audio_tokens")
    seconds = x.shape[0] / tokens_per_second if tokens_per_second else None
    return x, {"tokens": int(length), "seconds": seconds}, seconds


def _forward(task, model, x: torch.Tensor):
    return lambda: task.forward(model, x)


@torch.no_grad()
def evaluate_efficiency(model, split: EvalSplit, task, lengths: list[float],
                        time_limit: float | None, tokens_per_second: float | None = None) -> list[dict]:
    """Lengths in the task's efficiency unit: seconds of audio (ASR) or tokens (generation: RTF
    needs the tokenizer's tokens per second). `task` is a task object or its name."""
    task = task_named(task)
    rows, failed = [], None
    for length in sorted(lengths):
        x, row, seconds = _input(split, task.efficiency_unit, length, tokens_per_second)
        if failed is not None:
            rows.append({**row, "status": failed, "detail": "not run: a shorter input already failed"})
            continue
        fn = _forward(task, model, x)
        # The first call warms up and records peak memory (profiled); the second is timed.
        outcome = run_limited(lambda: measure(fn, memory=True), time_limit)
        if not outcome.ok:
            failed = outcome.status
            rows.append({**row, "status": outcome.status, "detail": outcome.detail})
            continue
        again = measure(fn, memory=False)
        row.update(status="ok", latency_s=again.seconds,
                   peak_memory_bytes=outcome.value.peak_bytes,
                   flops=count_flops(fn))
        row["rtf"] = again.seconds / seconds if seconds else None
        rows.append(row)
    return rows
