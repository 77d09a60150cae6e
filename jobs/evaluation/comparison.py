"""Pairwise comparisons of models scored on the same split: each pair's difference in CER and
WER (ASR, over utterances and over long-form recordings) or in NLL bits per token (generators,
over utterances), with a seeded 95 % paired-bootstrap interval (jobs/evaluation/paired_bootstrap.py).

Inputs are the suite's per-model metrics; each needs `per_utterance` rows (utt_id plus error
counts and totals) and, for long-form, `long_form` rows with their counts. Only units scored by
both models enter a pair.
"""

from __future__ import annotations

from itertools import combinations

from jobs.evaluation.paired_bootstrap import excludes_zero, paired_bootstrap

# metric -> (error count field, total field) in per-utterance and long-form rows
ASR_METRICS = {"cer": ("char_errors", "char_total"), "wer": ("word_errors", "word_total")}
GENERATION_METRICS = {"nll_bits": ("bits", "tokens")}


def _pair(rows_a: dict, rows_b: dict, errors: str, total: str, unit: str, seed: int,
          resamples: int) -> dict | None:
    keys = [k for k in rows_a if k in rows_b]
    if not keys:
        return None
    result = paired_bootstrap([rows_a[k][errors] for k in keys], [rows_b[k][errors] for k in keys],
                              [rows_a[k][total] for k in keys], resamples=resamples, seed=seed)
    return {**result, "unit": unit, "significant": excludes_zero(result)}


def compare_pair(a: dict, b: dict, seed: int = 0, resamples: int = 10000) -> dict:
    """{metric: bootstrap result} for a - b; long-form metrics are prefixed `long_form_`."""
    metrics = ASR_METRICS if a.get("task") == "asr" else GENERATION_METRICS
    by_utt = [{r["utt_id"]: r for r in m.get("per_utterance", [])} for m in (a, b)]
    out = {}
    for name, (errors, total) in metrics.items():
        result = _pair(*by_utt, errors, total, "utterance", seed, resamples)
        if result is not None:
            out[name] = result
    if a.get("task") == "asr":
        by_rec = [{r["target_seconds"]: r for r in m.get("long_form", []) if r.get("status") == "ok"
                   and "char_errors" in r} for m in (a, b)]
        for name, (errors, total) in ASR_METRICS.items():
            result = _pair(*by_rec, errors, total, "recording", seed, resamples)
            if result is not None:
                out[f"long_form_{name}"] = result
    return out


def compare_models(models: dict[str, dict], seed: int = 0, resamples: int = 10000) -> list[dict]:
    """Every pair of models of one task, in label order: [{a, b, metrics: {...}}]."""
    pairs = []
    for left, right in combinations(models, 2):
        if models[left].get("task") != models[right].get("task"):
            continue
        metrics = compare_pair(models[left], models[right], seed, resamples)
        if metrics:
            pairs.append({"a": left, "b": right, "metrics": metrics})
    return pairs


def describe(name_a: str, name_b: str, metric: str, result: dict) -> str:
    """One line: which model is lower on the metric, or that the interval includes 0."""
    span = f"{result['difference']:+.4f} [{result['low']:+.4f}, {result['high']:+.4f}]"
    if not result["significant"]:
        return f"{metric}: {name_a} - {name_b} = {span}, no difference shown ({result['units']} {result['unit']}s)"
    better = name_a if result["difference"] < 0 else name_b
    return f"{metric}: {name_a} - {name_b} = {span}, {better} lower ({result['units']} {result['unit']}s)"
