"""A study's points across seeds: each point's per-seed dev metric and mean, and each arm's
difference from the reference arm with a paired-bootstrap interval.

The interval resamples dev utterances. A point's per-utterance errors are summed over the seeds
both points completed (seed s of one paired with seed s of the other), so the difference is that
of the seed-averaged metric and the interval covers which utterances were drawn; the per-seed
differences beside it show how much the seeds themselves move it.
"""

from __future__ import annotations

from statistics import mean

from jobs.evaluation.paired_bootstrap import excludes_zero, paired_bootstrap
from jobs.tasks import task_named


def point_without_seed(params: dict) -> dict:
    return {k: v for k, v in params.items() if k != "seed"}


def group_trials(trials: list[dict]) -> list[dict]:
    """Completed trials grouped by their point without the seed, in first-seen order:
    [{params, arm, seeds, metrics (one per seed), mean, trials}]."""
    groups: list[dict] = []
    for t in trials:
        if t["status"] != "completed" or t["metric"] is None:
            continue
        params = point_without_seed(t["params"])
        group = next((g for g in groups if g["params"] == params), None)
        if group is None:
            group = {"params": params, "arm": t["settings"]["arm"], "settings": t["settings"],
                     "seeds": [], "metrics": [], "trials": []}
            groups.append(group)
        group["seeds"].append(t["params"].get("seed"))
        group["metrics"].append(t["metric"])
        group["trials"].append(t)
    for g in groups:
        g["mean"] = mean(g["metrics"])
    return groups


def _summed_units(group: dict, seeds: list, errors: str, total: str) -> dict:
    """utt_id -> (errors summed over `seeds`, total summed over them) for utterances every seed scored."""
    by_seed = {t["params"].get("seed"): {u["utt_id"]: u for u in t.get("units") or []}
               for t in group["trials"]}
    common = set.intersection(*(set(by_seed[s]) for s in seeds)) if seeds else set()
    return {u: (sum(by_seed[s][u][errors] for s in seeds), sum(by_seed[s][u][total] for s in seeds))
            for u in sorted(common)}


def compare_to_reference(groups: list[dict], reference: str, task, seed: int = 0,
                         resamples: int = 10000) -> list[dict]:
    """For every group not of the reference arm: its dev metric minus the reference's, per seed,
    and over utterances with seeds summed, with the paired-bootstrap interval. The reference is
    the first group of that arm. Empty when the reference arm has no completed trial."""
    ref = next((g for g in groups if g["arm"] == reference), None)
    if ref is None:
        return []
    task = task_named(task)
    metric = task.dev_metric
    errors, total = task.paired_metrics[metric]
    out = []
    for g in groups:
        if g is ref:
            continue
        seeds = [s for s in g["seeds"] if s in ref["seeds"]]
        per_seed = [g["metrics"][g["seeds"].index(s)] - ref["metrics"][ref["seeds"].index(s)] for s in seeds]
        row = {"params": g["params"], "arm": g["arm"], "reference": ref["params"], "metric": metric,
               "seeds": seeds, "per_seed_difference": per_seed,
               "seeds_lower": sum(d < 0 for d in per_seed), "interval": None}
        a, b = _summed_units(g, seeds, errors, total), _summed_units(ref, seeds, errors, total)
        keys = [u for u in a if u in b]
        if keys:
            result = paired_bootstrap([a[u][0] for u in keys], [b[u][0] for u in keys],
                                      [a[u][1] for u in keys], resamples=resamples, seed=seed)
            row["interval"] = {**result, "significant": excludes_zero(result)}
        out.append(row)
    return out


def markdown(groups: list[dict], comparisons: list[dict], metric: str, reference: str | None) -> str:
    """One row per point: per-seed dev metric, mean, and the difference from the reference arm."""
    by_params = {str(c["params"]): c for c in comparisons}
    header = ["point", "seeds", f"dev {metric} per seed", "mean", f"- {reference or 'reference'}",
              "95 % interval", "p", "seeds lower"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g in sorted(groups, key=lambda g: g["mean"]):
        c = by_params.get(str(g["params"]))
        interval = (c or {}).get("interval")
        cells = [", ".join(f"{k}={v}" for k, v in g["params"].items()) or "base",
                 ", ".join(str(s) for s in g["seeds"]), " ".join(f"{m:.4f}" for m in g["metrics"]),
                 f"{g['mean']:.4f}",
                 "reference" if c is None and g["arm"] == reference else
                 (f"{interval['difference']:+.4f}" if interval else "-"),
                 f"[{interval['low']:+.4f}, {interval['high']:+.4f}]" if interval else "-",
                 f"{interval['p_value']:.3f}" if interval else "-",
                 f"{c['seeds_lower']}/{len(c['seeds'])}" if c else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
