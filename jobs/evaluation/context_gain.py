"""Context gain: how much decoding a recording in one pass helps over decoding it utterance by
utterance (the segmented reference), CER segmented - CER one pass. Positive: the model used
the context (the same voice, the same room, earlier words); negative: the long input hurt it.

Both decodings are scored against the same joined reference on the same recordings, so the
gain is a paired difference: its interval is the paired bootstrap over recordings
(jobs/evaluation/paired_bootstrap.py), a - b with a = segmented errors, b = one-pass errors.
"""

from __future__ import annotations

from jobs.evaluation.paired_bootstrap import excludes_zero, paired_bootstrap

METRICS = {"cer": ("char_errors", "char_total"), "wer": ("word_errors", "word_total")}


def scored(rows: list[dict]) -> list[dict]:
    """Recordings decoded both ways (a failed one-pass decode has no counts)."""
    return [r for r in rows if r.get("status") == "ok" and r.get("segmented")]


def context_gain(rows: list[dict], metric: str = "cer", seed: int = 0, resamples: int = 10000) -> dict:
    """{difference (the gain), low, high, p_value, a (segmented), b (one pass), units, significant}
    over the recordings scored both ways; {status: not_measured, reason} when there are none."""
    errors, total = METRICS[metric]
    rows = scored(rows)
    if not rows or sum(r[total] for r in rows) <= 0:
        return {"status": "not_measured", "reason": "no recording was decoded both in one pass and segmented"}
    result = paired_bootstrap([r["segmented"][errors] for r in rows], [r[errors] for r in rows],
                              [r[total] for r in rows], resamples=resamples, seed=seed)
    return {"status": "ok", **result, "segmented": result["a"], "one_pass": result["b"],
            "unit": "recording",
            # one recording resampled is always itself: its degenerate interval shows nothing
            "significant": excludes_zero(result) and result["units"] > 1}


def gain_differences(rows_a: list[dict], rows_b: list[dict]) -> tuple[list[float], list[float], list[float]] | None:
    """Per recording scored by both models: (segmented - one pass) char errors of a and of b, and
    the reference characters; the units of a paired comparison of two models' context gains."""
    a = {r["id"]: r for r in scored(rows_a)}
    b = {r["id"]: r for r in scored(rows_b)}
    keys = [k for k in a if k in b]
    if not keys:
        return None
    return ([a[k]["segmented"]["char_errors"] - a[k]["char_errors"] for k in keys],
            [b[k]["segmented"]["char_errors"] - b[k]["char_errors"] for k in keys],
            [a[k]["char_total"] for k in keys])
