"""Evaluate a finished arms x seeds study (e.g. configs/tune/memory-study.yaml) on a test split:
each seed's arms side by side with the full suite, then one table pooled over the seeds.

    lact-audio evaluate --study STUDY_DIR [--study STUDY_DIR2 ...] --data FEATURES/test-clean \
        [--report DIR] [--reference ARM] [any full-suite flag, e.g. --long-form-seconds 30,60,max]

(`python -m jobs.tuning.study_eval` with the same arguments does the same.)

(several --study folders: the same study run for different seeds, e.g. `search.seeds=[1,2]` under
another --name; their trials are pooled as one study, the report goes under the first.)

- The models: every completed trial of `STUDY_DIR/summary.json`, by its `settings` (arm, seed), at
  its best checkpoint (`best_checkpoint` in the trial's Train summary, `STUDY_DIR/train/
  train-trial_id=ID/summary.json`), so the run's config beside it says it trained on sessions.
- Per seed: `lact-audio evaluate --suite full` over that seed's arms (REPORT/seed<k>/: metrics.json,
  report.md, every pair's paired intervals); with `--suite long-form` the long-form recordings only
  (no sessions), for a test split too long for every suite. Every run decodes the same recordings
  and sessions.
- Pooled (REPORT/report.md, REPORT/study.json): per arm and long-form length, CER in one pass and
  segmented, the context gain (segmented - one pass) and each arm - the reference arm, with 95 %
  paired-bootstrap intervals over the recordings, each recording's errors summed over the seeds
  (as the study's own dev comparison sums each utterance's); the per-seed differences and how many
  seeds were lower; the same for sessions in one pass and streamed (block-causal models only).
"""

from __future__ import annotations

import sys
import time

from jobs.evaluation.data import read_split
from jobs.evaluation.paired_bootstrap import excludes_zero, paired_bootstrap
from jobs.evaluation.position_nll import bin_label, nll_by_position
from jobs.evaluation.suite import run_suite
from jobs.runs.model_io import load_model
from jobs.tasks import task_named
from pipeline import uri as uris
from pipeline.errors import UserError
from pipeline.files import read_json_or_none, write_json

ARM_ORDER = ("lact", "static_fast_weights", "window", "full_attention")



def study_models(study_dir: str | list[str]) -> dict[int, dict[str, str]]:
    """{seed: {arm: best checkpoint URI}} of the study's completed trials (arms in ARM_ORDER).
    Several study folders (the same study run for different seeds) are merged."""
    if isinstance(study_dir, list):
        out: dict[int, dict[str, str]] = {}
        for one in study_dir:
            for seed, arms in study_models(one).items():
                twice = set(arms) & set(out.get(seed, {}))
                if twice:
                    raise UserError(f"--study: arm {sorted(twice)[0]} with seed {seed} is in two of the studies")
                out.setdefault(seed, {}).update(arms)
        return _in_arm_order(out)
    summary = read_json_or_none(uris.join(study_dir, "summary.json"))
    if summary is None:
        raise UserError(f"--study: no summary.json under {study_dir} (has the study finished?)")
    out: dict[int, dict[str, str]] = {}
    for trial in summary["trials"]:
        if trial["status"] != "completed":
            print(f"  study_eval: trial {trial['trial_id']} {trial['settings']['arm']} seed "
                  f"{trial['settings']['seed']} is {trial['status']}: left out", flush=True)
            continue
        arm, seed = trial["settings"]["arm"], int(trial["settings"]["seed"])
        train = read_json_or_none(uris.join(study_dir, "train", f"train-trial_id={trial['trial_id']}", "summary.json"))
        if not train or not train.get("best_checkpoint"):
            raise UserError(f"trial {trial['trial_id']}: no best_checkpoint in its Train summary")
        if arm in out.setdefault(seed, {}):
            raise UserError(f"two completed trials of arm {arm} with seed {seed}: this evaluation "
                            "wants one point per arm (an arms x seeds study)")
        out[seed][arm] = train["best_checkpoint"]
    return _in_arm_order(out)


def _in_arm_order(models: dict[int, dict[str, str]]) -> dict[int, dict[str, str]]:
    """Seeds in order, each seed's arms in ARM_ORDER (others after, by name)."""
    rank = {a: i for i, a in enumerate(ARM_ORDER)}
    return {s: dict(sorted(arms.items(), key=lambda kv: (rank.get(kv[0], 99), kv[0])))
            for s, arms in sorted(models.items())}


# ------------------------------------------------------------------------------ pooling
def _rows(metrics: dict, kind: str) -> dict:
    """{(length, id): row} of the recordings ('long_form') or sessions ('one_pass_sessions',
    'streamed_sessions') a model decoded both in one pass and segmented."""
    if kind == "long_form":
        rows = (metrics.get("long_form") or {}).get("recordings", [])
    else:
        part = (metrics.get("adaptation") or {}).get(kind) or {}
        rows = part.get("sessions", []) if part.get("status") == "ok" else []
    return {(str(r.get("length", kind)), r["id"]): r for r in rows
            if r.get("status") == "ok" and "char_errors" in r and "segmented" in r}


def _by_target(keys: list, rows: dict) -> list[str]:
    """The long-form lengths of `keys`, shortest target first, whole chapters ('longest') last."""
    target = {k[0]: rows[k].get("target_seconds") for k in keys}
    return sorted(target, key=lambda length: (target[length] is None, target[length] or 0.0))


def _summed(per_seed: list[dict], keys: list) -> tuple[list[float], list[float], list[float]]:
    """Per unit: one-pass errors, segmented errors and characters, summed over the seeds."""
    one = [sum(rows[k]["char_errors"] for rows in per_seed) for k in keys]
    seg = [sum(rows[k]["segmented"]["char_errors"] for rows in per_seed) for k in keys]
    tot = [sum(rows[k]["char_total"] for rows in per_seed) for k in keys]
    return one, seg, tot


def _interval(a, b, n, seed: int, resamples: int) -> dict | None:
    if not a or sum(n) <= 0:
        return None
    r = paired_bootstrap(a, b, n, resamples=resamples, seed=seed)
    return {**r, "significant": excludes_zero(r) and r["units"] > 1}


def pool(per_seed_models: dict[int, dict[str, dict]], reference: str | None, kind: str,
         seed: int = 0, resamples: int = 10000) -> dict:
    """{group: {arm: {one_pass, segmented, context_gain, vs_reference, per_seed}}}, group a
    long-form length (and 'all') or the sessions; units common to every seed and every arm."""
    seeds = sorted(per_seed_models)
    arms = [a for a in ARM_ORDER if all(a in per_seed_models[s] for s in seeds)]
    rows = {a: [_rows(per_seed_models[s][a], kind) for s in seeds] for a in arms}
    common = None
    for a in arms:
        for r in rows[a]:
            common = set(r) if common is None else common & set(r)
    common = sorted(common or [])
    groups = {"all": common} if kind != "long_form" else {
        **{length: [k for k in common if k[0] == length] for length in _by_target(common, rows[arms[0]][0])},
        "all": common}
    out = {}
    for group, keys in groups.items():
        if not keys:
            continue
        table = {}
        for a in arms:
            one, seg, tot = _summed(rows[a], keys)
            entry = {"units": len(keys), "seeds": seeds,
                     "one_pass_cer": sum(one) / max(sum(tot), 1), "segmented_cer": sum(seg) / max(sum(tot), 1),
                     "context_gain": _interval(seg, one, tot, seed, resamples),
                     "per_seed_one_pass_cer": {}}
            for s, r in zip(seeds, rows[a]):
                e = sum(r[k]["char_errors"] for k in keys)
                entry["per_seed_one_pass_cer"][s] = e / max(sum(r[k]["char_total"] for k in keys), 1)
            table[a] = entry
        if reference in table:
            r_one, _, r_tot = _summed(rows[reference], keys)
            for a in arms:
                if a == reference:
                    continue
                one, _, tot = _summed(rows[a], keys)
                diffs = {s: table[a]["per_seed_one_pass_cer"][s] - table[reference]["per_seed_one_pass_cer"][s]
                         for s in seeds}
                table[a]["vs_reference"] = {**(_interval(one, r_one, tot, seed, resamples) or {}),
                                            "per_seed": diffs,
                                            "seeds_lower": sum(d < 0 for d in diffs.values())}
        out[group] = table
    return out


# ------------------------------------------------------------------------------ report
def _span(r: dict | None) -> str:
    if not r or "difference" not in r:
        return "-"
    return f"{r['difference']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}]" + (" *" if r.get("significant") else "")


def markdown(pooled: dict, reference: str | None, seeds: list[int]) -> str:
    lines = [f"# Study evaluation, seeds {seeds} pooled\n",
             "CER over units common to every arm and seed; intervals: 95 % paired bootstrap over the "
             "units, each unit's character errors summed over the seeds (* the interval excludes 0). "
             "Context gain = CER segmented - CER in one pass (positive: the context helped). "
             f"Reference arm: {reference}.\n"]
    titles = {"long_form": "Long-form recordings (one pass vs segmented, per length)",
              "one_pass_sessions": "Sessions decoded in one pass",
              "streamed_sessions": "Sessions streamed (block-causal models only)"}
    for kind, groups in pooled.items():
        lines.append(f"\n## {titles.get(kind, kind)}\n")
        if not groups:
            lines.append("nothing measured (no unit scored by every arm in every seed)\n")
            continue
        lines.append(f"| length | arm | units | CER one pass | CER segmented | context gain | "
                     f"- {reference} (one pass) | per-seed - {reference} | seeds lower |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for group, table in groups.items():
            for arm, e in table.items():
                vs = e.get("vs_reference")
                per = " ".join(f"{d:+.4f}" for d in vs["per_seed"].values()) if vs else "reference"
                lower = f"{vs['seeds_lower']}/{len(e['seeds'])}" if vs else "-"
                lines.append(f"| {group} | {arm} | {e['units']} | {e['one_pass_cer']:.4f} | "
                             f"{e['segmented_cer']:.4f} | {_span(e['context_gain'])} | {_span(vs)} | "
                             f"{per} | {lower} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ generators
def position_nll_per_seed(models: dict[int, dict[str, str]], data: str, report: str, config) -> dict:
    """{seed: {arm: nll_by_position result}}: every model on the same sequences of `data`;
    each seed's results also in REPORT/seed<k>/position_nll.json."""
    import torch


    split = read_split(data, features=False, audio_tokens=True)
    out: dict[int, dict[str, dict]] = {}
    for seed, arms in models.items():
        out[seed] = {}
        for arm, uri in arms.items():
            model, _ = load_model(uri)
            model.eval()
            started = time.perf_counter()
            with torch.no_grad():
                out[seed][arm] = nll_by_position(model, split, config.nll_position_bins, config.nll_sequences,
                                                 config.time_limit, config.bootstrap_seed, config.bootstrap_resamples)
            print(f"  study_eval: seed {seed} {arm}: NLL by position {time.perf_counter() - started:.0f} s", flush=True)
        write_json(uris.join(report, f"seed{seed}", "position_nll.json"), {"models": arms, "results": out[seed]}, sort_keys=False)
    return out


def pool_position_nll(per_seed: dict[int, dict[str, dict]], seed: int = 0, resamples: int = 10000) -> dict:
    """{bin: {"arms": {arm: {sequences, nll_bits, per_seed}}, "pairs": {"a - b": interval + per_seed
    + seeds_lower}}} over the sequences every arm scored in every seed, each sequence's bits and
    tokens summed over the seeds; a pair "a - b" is negative where a predicts better."""
    seeds = sorted(per_seed)
    arms = [a for a in ARM_ORDER if all(a in per_seed[s] for s in seeds)]
    if not arms:
        return {}
    scored = {(s, a): {r["id"]: r["bins"] for r in per_seed[s][a].get("sequences", []) if r.get("status") == "ok"}
              for s in seeds for a in arms}
    edges = per_seed[seeds[0]][arms[0]]["edges"]
    out = {}
    for lo, hi in zip(edges, edges[1:]):
        label = bin_label(lo, hi)
        ids = sorted(set.intersection(*({i for i, b in got.items() if label in b} for got in scored.values())))
        if not ids:
            continue
        tokens = [sum(scored[(s, arms[0])][i][label]["tokens"] for s in seeds) for i in ids]
        bits = {a: [sum(scored[(s, a)][i][label]["bits"] for s in seeds) for i in ids] for a in arms}
        per = {a: {s: sum(scored[(s, a)][i][label]["bits"] for i in ids)
                   / sum(scored[(s, a)][i][label]["tokens"] for i in ids) for s in seeds} for a in arms}
        table = {"arms": {a: {"sequences": len(ids), "nll_bits": sum(bits[a]) / sum(tokens), "per_seed": per[a]}
                          for a in arms}, "pairs": {}}
        for i, a in enumerate(arms):
            for b in arms[i + 1:]:
                diffs = {s: per[a][s] - per[b][s] for s in seeds}
                table["pairs"][f"{a} - {b}"] = {**(_interval(bits[a], bits[b], tokens, seed, resamples) or {}),
                                                "per_seed": diffs, "seeds_lower": sum(d < 0 for d in diffs.values())}
        out[label] = table
    return out


def position_markdown(pooled: dict, seeds: list[int]) -> str:
    lines = [f"# Generator NLL by position, seeds {seeds} pooled\n",
             "Bits per token in each position bin, over the sequences every arm scored in every seed; "
             "intervals: 95 % paired bootstrap over the sequences, each sequence's bits summed over the "
             "seeds (* the interval excludes 0). A pair a - b below 0: a predicts better.\n",
             "\n## Bits per token\n", "| bin | arm | sequences | pooled | per seed |", "|---|---|---|---|---|"]
    for label, table in pooled.items():
        for arm, e in table["arms"].items():
            per = " ".join(f"{v:.4f}" for v in e["per_seed"].values())
            lines.append(f"| {label} | {arm} | {e['sequences']} | {e['nll_bits']:.4f} | {per} |")
    lines += ["\n## Pairs\n", "| bin | pair | difference [95 % interval] | per seed | seeds lower |", "|---|---|---|---|---|"]
    for label, table in pooled.items():
        for pair, r in table["pairs"].items():
            per = " ".join(f"{d:+.4f}" for d in r["per_seed"].values())
            lines.append(f"| {label} | {pair} | {_span(r)} | {per} | {r['seeds_lower']}/{len(r['per_seed'])} |")
    return "\n".join(lines) + "\n"


def asr_study(models: dict, data: str, report: str, reference: str | None, config) -> tuple[str, dict]:
    """The full suite per seed (REPORT/seed<k>/), then the pooled tables: (markdown, summary)."""
    per_seed = {}
    for seed, arms in models.items():
        print(f"  study_eval: seed {seed}: {', '.join(arms)}", flush=True)
        results = run_suite(list(arms.values()), data, uris.join(report, f"seed{seed}"), config)
        labels = {m["architecture"]: label for label, m in results["models"].items()}
        per_seed[seed] = {arm: results["models"][labels[arm]] for arm in arms if arm in labels}
    pooled = {kind: pool(per_seed, reference, kind, config.bootstrap_seed, config.bootstrap_resamples)
              for kind in ("long_form", "one_pass_sessions", "streamed_sessions")}
    return markdown(pooled, reference, sorted(per_seed)), {"pooled": pooled}


def generation_study(models: dict, data: str, report: str, reference: str | None, config) -> tuple[str, dict]:
    """NLL by position per seed, then pooled per bin: (markdown, summary); no reference arm."""
    pooled = pool_position_nll(position_nll_per_seed(models, data, report, config),
                               config.bootstrap_seed, config.bootstrap_resamples)
    return position_markdown(pooled, sorted(models)), {"position_nll": pooled}


# what a task's study pools across seeds (task.study_pooling) -> the study that does it
STUDIES = {"long_form": asr_study, "nll_by_position": generation_study}


def evaluate_study(studies: list[str], data: str, report: str | None, reference: str | None, config) -> int:
    """`lact-audio evaluate --study ...`: the models of `studies`, evaluated and pooled; the report
    under `report` (default: the first study's eval/)."""
    studies = [uris.absolute(s) for s in studies]
    report = uris.absolute(report or uris.join(studies[0], "eval"))
    reference = reference or (read_json_or_none(uris.join(studies[0], "summary.json")) or {}).get("reference")
    models = study_models(studies)
    first = next(iter(next(iter(models.values()), {}).values()), None)
    if first is None:
        raise UserError(f"--study: no completed trial under {', '.join(studies)}")
    study = STUDIES[task_named(load_model(first)[1]["task"]).study_pooling]
    text, summary = study(models, data, report, reference, config)
    fs, path = uris.filesystem(report)
    fs.makedirs(path, exist_ok=True)
    with fs.open(f"{path}/report.md", "w") as f:
        f.write(text)
    write_json(uris.join(report, "study.json"), {"study": studies, "data": data, "reference": reference,
                                                  "models": {str(s): a for s, a in models.items()}, **summary}, sort_keys=False)
    print(text)
    print(f"report {uris.join(report, 'report.md')} (per seed: {uris.join(report, 'seed<k>')}/)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m jobs.tuning.study_eval ARGS` is `lact-audio evaluate ARGS` (ARGS with --study)."""
    from jobs.cli import main as cli

    return cli(["evaluate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
