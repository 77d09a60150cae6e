"""Paired bootstrap of the difference between two models scored on the same units.

A unit is one utterance or one long-form recording; each model has an error count per unit
(character edits, or nats of NLL) over the same per-unit total (reference characters, or
tokens). The metric is a ratio of sums (corpus CER, bits per token), so the difference is
(sum errors_a - sum errors_b) / sum totals, and the bootstrap resamples units with replacement,
keeping each unit's pair together: the interval reflects which utterances were drawn, not
noise that cancels between the two models (Koehn 2004; Bisani & Ney 2004).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Resamples drawn per block: bounds the weight matrix at BLOCK x units.
BLOCK = 1000


def paired_bootstrap(errors_a: Sequence[float], errors_b: Sequence[float], totals: Sequence[float], *,
                     resamples: int = 10000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Difference of the ratio metric a - b with its percentile interval.

    Returns difference, low, high (the `confidence` interval), p_value (two-sided: twice the
    smaller share of resampled differences on either side of 0, at least 1/resamples), a and b
    (each model's metric), units, resamples, seed, confidence. The same inputs and seed give
    the same interval. Raises ValueError on mismatched lengths, no units or no totals."""
    a, b, n = (np.asarray(x, dtype=np.float64) for x in (errors_a, errors_b, totals))
    if not (a.shape == b.shape == n.shape) or a.ndim != 1:
        raise ValueError(f"errors_a, errors_b and totals must be 1-D and of one length, got "
                         f"{a.shape}, {b.shape}, {n.shape}")
    if a.size == 0 or n.sum() <= 0:
        raise ValueError("paired bootstrap needs at least one unit with a positive total")
    if resamples < 1 or not 0 < confidence < 1:
        raise ValueError(f"need resamples >= 1 and 0 < confidence < 1, got {resamples}, {confidence}")
    rng = np.random.default_rng(seed)
    units = a.size
    diff = a - b
    draws = []
    for start in range(0, resamples, BLOCK):
        size = min(BLOCK, resamples - start)
        # How often each unit is drawn in each resample (multinomial = drawing with replacement).
        weights = rng.multinomial(units, np.full(units, 1.0 / units), size=size).astype(np.float64)
        draws.append((weights @ diff) / np.maximum(weights @ n, 1e-12))
    samples = np.concatenate(draws)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    below, above = float(np.mean(samples <= 0)), float(np.mean(samples >= 0))
    return {
        "difference": float(diff.sum() / n.sum()),
        "low": float(low), "high": float(high),
        "p_value": min(1.0, max(2.0 * min(below, above), 1.0 / resamples)),
        "a": float(a.sum() / n.sum()), "b": float(b.sum() / n.sum()),
        "units": int(units), "resamples": int(resamples), "seed": int(seed),
        "confidence": float(confidence),
    }


def excludes_zero(result: dict) -> bool:
    """True when the interval lies wholly on one side of 0 (the difference is significant)."""
    return result["low"] > 0 or result["high"] < 0
