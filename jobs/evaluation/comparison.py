"""Pairwise comparisons of models scored on the same split: each pair's difference in CER and
WER (ASR, over utterances and over long-form recordings) or in NLL bits per token (generators,
over utterances and, per position bin, over long sequences), with a seeded 95 % paired-bootstrap
interval (jobs/evaluation/paired_bootstrap.py).

Inputs are the suite's per-model metrics; each needs `per_utterance` rows (utt_id plus error
counts and totals); for long-form, the `long_form` recordings with their counts (one pass and
segmented); for generators, the `nll_by_position` sequences with their bits per bin. Only units
scored by both models enter a pair. Long-form metrics: `long_form_cer` / `long_form_wer` over
every recording, `long_form_cer_<length>` per length, and `long_form_context_gain`, the
difference of the two models' context gains (CER segmented - CER one pass) over recordings;
`session_cer` and `session_context_gain` the same over the sessions decoded in one pass.
Generator metrics: `nll_bits` and `nll_bits_<bin>` per position bin.
"""

from __future__ import annotations

from itertools import combinations

from jobs.evaluation.context_gain import gain_differences
from jobs.evaluation.paired_bootstrap import excludes_zero, paired_bootstrap
from jobs.tasks import task_named
from jobs.tasks.asr import PAIRED_METRICS as LONG_FORM_METRICS   # long-form rows carry ASR counts


def _result(errors_a, errors_b, totals, unit: str, seed: int, resamples: int) -> dict:
    result = paired_bootstrap(errors_a, errors_b, totals, resamples=resamples, seed=seed)
    return {**result, "unit": unit, "significant": excludes_zero(result)}


def _pair(rows_a: dict, rows_b: dict, errors: str, total: str, unit: str, seed: int,
          resamples: int) -> dict | None:
    keys = [k for k in rows_a if k in rows_b]
    if not keys or sum(rows_a[k][total] for k in keys) <= 0:
        return None
    return _result([rows_a[k][errors] for k in keys], [rows_b[k][errors] for k in keys],
                   [rows_a[k][total] for k in keys], unit, seed, resamples)


def _long_form_rows(m: dict) -> list[dict]:
    return [r for r in (m.get("long_form") or {}).get("recordings", [])
            if r.get("status") == "ok" and "char_errors" in r]


def _long_form(a: dict, b: dict, seed: int, resamples: int) -> dict:
    rows = [_long_form_rows(m) for m in (a, b)]
    out = {}
    by_id = [{r["id"]: r for r in x} for x in rows]
    for name, (errors, total) in LONG_FORM_METRICS.items():
        result = _pair(*by_id, errors, total, "recording", seed, resamples)
        if result is not None:
            out[f"long_form_{name}"] = result
    lengths = sorted({r["length"] for r in rows[0]} & {r["length"] for r in rows[1]},
                     key=lambda n: [r["seconds"] for r in rows[0] if r["length"] == n][0])
    if len(lengths) > 1:
        for length in lengths:
            per = [{k: r for k, r in x.items() if r["length"] == length} for x in by_id]
            result = _pair(*per, "char_errors", "char_total", "recording", seed, resamples)
            if result is not None:
                out[f"long_form_cer_{length}"] = result
    gains = gain_differences(*rows)
    if gains is not None and sum(gains[2]) > 0:
        out["long_form_context_gain"] = _result(*gains, "recording", seed, resamples)
    return out


def _sessions(a: dict, b: dict, seed: int, resamples: int) -> dict:
    """Sessions decoded in one pass (adaptation.one_pass_sessions): CER and context gain, paired."""
    rows = [[r for r in ((m.get("adaptation") or {}).get("one_pass_sessions") or {}).get("sessions", [])
             if r.get("status") == "ok" and "char_errors" in r] for m in (a, b)]
    out = {}
    result = _pair(*[{r["id"]: r for r in x} for x in rows], "char_errors", "char_total", "session", seed, resamples)
    if result is not None:
        out["session_cer"] = result
    gains = gain_differences(*rows)
    if gains is not None and sum(gains[2]) > 0:
        out["session_context_gain"] = _result(*gains, "session", seed, resamples)
    return out


def _position_bins(a: dict, b: dict, seed: int, resamples: int) -> dict:
    seqs = [{s["id"]: s["bins"] for s in (m.get("nll_by_position") or {}).get("sequences", [])} for m in (a, b)]
    labels = [x["label"] for x in (a.get("nll_by_position") or {}).get("bins", [])]
    out = {}
    for label in labels:
        per = [{k: bins[label] for k, bins in x.items() if label in bins} for x in seqs]
        result = _pair(*per, "bits", "tokens", "sequence", seed, resamples)
        if result is not None:
            out[f"nll_bits_{label}"] = result
    return out


# the extra pairings a task names (task.paired_sections), each over its own units
PAIRED_SECTIONS = {"long_form": _long_form, "sessions": _sessions, "position_bins": _position_bins}


def compare_pair(a: dict, b: dict, seed: int = 0, resamples: int = 10000) -> dict:
    """{metric: bootstrap result} for a - b (see the module docstring for the metrics)."""
    task = task_named(a.get("task"))
    by_utt = [{r["utt_id"]: r for r in m.get("per_utterance", [])} for m in (a, b)]
    out = {}
    for name, (errors, total) in task.paired_metrics.items():
        result = _pair(*by_utt, errors, total, "utterance", seed, resamples)
        if result is not None:
            out[name] = result
    for section in task.paired_sections:
        out.update(PAIRED_SECTIONS[section](a, b, seed, resamples))
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
