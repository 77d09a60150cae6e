"""A study: the MLflow parent run, the Tuner (new, or restored with --resume), then the finish
step over its results (table, plots, best trial registered, summary.json).

    <output>/<study>/                 Tune's experiment folder (what --resume restores)
    <output>/<study>/train/           each trial's Ray Train run (checkpoints, summary.json)
    <output>/<study>/summary.json     trials (trial_id, params, metric, status, steps, seconds), best
    <output>/<study>/report/          table.csv, table.md, dev_vs_chunk_size.png, dev_vs_wall_time.png
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from jobs.runs import tracking
from jobs.training.config import model_fields
from jobs.tasks import task_named
from jobs.tuning import report, seeds
from jobs.tuning.dev_units import DEV_UNITS_FILE
from jobs.tuning.config import base_training_config, evaluations, points, skipped_points, trial_config
from jobs.tuning.space import UPDATE_RULES
from jobs.tuning.trial import StudyContext, point_key, run_trial, train_run_name
from models import LaCTAudioConfig
from pipeline import uri as uris
from pipeline.errors import UserError
from pipeline.files import read_json_or_none, write_json
from pipeline.ray_connection import connect

STUDY_FILE = "study.json"   # the parent MLflow run id, so a resumed study logs into the same run


@dataclass
class StudyPlan:
    """What a study checked before starting anything."""

    study: DictConfig
    base: DictConfig             # the training config every trial starts from
    task: object                 # its task object
    root: str                    # where studies go
    study_dir: str               # <root>/<name>: Tune's experiment folder
    resume: bool

    @property
    def storage(self) -> str:
        return uris.join(self.study_dir, "train")


def run_study(study: DictConfig, resume: bool = False, address: str | None = None,
              echo: bool = True) -> dict:
    """Run (or resume) the study; returns its summary. An interrupted study returns
    {"interrupted": True, ...} and can be resumed with resume=True."""
    plan = plan_study(study, resume)
    tracking_uri = tracking.setup(plan.base.tracking.experiment)
    earlier = read_json_or_none(uris.join(plan.study_dir, STUDY_FILE))["mlflow_run_id"] if resume else None
    connect(address)
    with tracking.started_run(run_id=earlier, run_name=None if earlier else study.name) as parent_id:
        if not resume:
            tracking.set_tags({"tune_study": study.name, "task": plan.task.name})
            tracking.log_dict(OmegaConf.to_container(study, resolve=True), "study.json")
            write_json(uris.join(plan.study_dir, STUDY_FILE), {"mlflow_run_id": parent_id,
                                                               "tracking_uri": tracking_uri}, sort_keys=False)
        context = StudyContext(
            name=study.name, storage=plan.storage,
            configs={point_key(p): OmegaConf.to_container(trial_config(study, p), resolve=True)
                     for p in points(study)},
            parent_run_id=parent_id,
            env={"LACT_AUDIO_HOME": uris.work_home(), "MLFLOW_TRACKING_URI": tracking_uri})
        results = fit_trials(plan, context)
        if interrupted(results, study):
            print(f"study {study.name} interrupted: run the same command with --resume to "
                  "continue it (finished trials are kept)")
            return {"name": study.name, "interrupted": True, "study_dir": plan.study_dir}
        summary, tables = finish_study(plan, results, parent_id, tracking_uri)
    if echo:
        print_study(plan, summary, *tables)
    return summary


def plan_study(study: DictConfig, resume: bool) -> StudyPlan:
    """Check the study's base config and its folder (a new study must not exist, a resumed one must)."""
    base = base_training_config(study)
    root = uris.absolute(study.output or uris.join(uris.work_home(), "tune"))
    study_dir = uris.join(root, study.name)
    uris.ensure_writable(root, "study output (study config key 'output')")
    exists = uris.exists(uris.join(study_dir, STUDY_FILE))
    if resume and not exists:
        raise UserError(f"--resume: no study named {study.name!r} under {root}")
    if exists and not resume:
        raise UserError(f"a study named {study.name!r} exists under {root}: "
                        "add --resume to continue it, or --name NEW for a new one")
    return StudyPlan(study=study, base=base, task=task_named(base.task), root=root, study_dir=study_dir,
                     resume=resume)


def fit_trials(plan: StudyPlan, context: StudyContext):
    """Tune's results over every point: a new Tuner, or the interrupted one restored."""
    from ray import tune

    study = plan.study
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context),
                                    {"cpu": study.resources.trial_cpus})
    if plan.resume:
        tuner = tune.Tuner.restore(plan.study_dir, trainable)
    else:
        tuner = tune.Tuner(trainable, param_space={"params": tune.grid_search(points(study))},
                           tune_config=tune_config(study, plan.base),
                           run_config=tune.RunConfig(name=study.name, storage_path=plan.root, verbose=1))
    return tuner.fit()


def interrupted(results, study: DictConfig) -> bool:
    """After an interrupt (Ctrl+C) Tune leaves unfinished trials for a restore: trials it never
    started are not in the results at all, one cut off before its first report has no metrics."""
    never_reported = sum(1 for r in results if r.config is None or not r.metrics)
    return (never_reported > results.num_errors
            or results.num_terminated + results.num_errors < len(points(study)))


def finish_study(plan: StudyPlan, results, parent_id: str, tracking_uri: str) -> tuple[dict, tuple[str, str]]:
    """Trials described, stopped runs closed, the best registered, the report written and logged,
    summary.json; returns (summary, (trial table, per-point table))."""
    study, task = plan.study, plan.task
    trials = [describe(r, study, plan.storage, plan.base.train.max_steps) for r in results]
    tracking.kill_running_children(parent_id)   # trials ASHA stopped never reach their finish step
    best = min((t for t in trials if t["status"] == "completed" and t["metric"] is not None),
               key=lambda t: t["metric"], default=None)
    registered = register_best(best, study) if best else None
    groups = seeds.group_trials(trials)
    reference = study.search.reference
    comparisons = seeds.compare_to_reference(groups, reference, task.name) if reference else []
    seed_table = seeds.markdown(groups, comparisons, task.dev_metric, reference)
    table = write_report(trials, seed_table, task, plan.study_dir)
    if best:
        tracking.log_metrics({f"best_dev_{task.dev_metric}": best["metric"]})
    summary = {
        "name": study.name, "study_dir": plan.study_dir, "task": task.name,
        "metric": f"dev_{task.dev_metric}", "mode": "min",
        "trials": [{k: t[k] for k in ("trial_id", "params", "metric", "status", "steps",
                                      "seconds", "settings", "mlflow_run_id", "model_uri")}
                   for t in trials],
        "best": None if best is None else {**{k: best[k] for k in ("trial_id", "params", "metric",
                                                                  "settings", "mlflow_run_id")},
                                           "model_uri": registered},
        "skipped": [{"params": p, "reason": reason} for p, reason in skipped_points(study)],
        # each point over its seeds, and each arm against the reference arm (jobs/tuning/seeds.py)
        "points": [{k: g[k] for k in ("params", "arm", "seeds", "metrics", "mean")} for g in groups],
        "reference": reference, "comparisons": comparisons,
        "mlflow_run_id": parent_id, "tracking_uri": tracking_uri,
    }
    write_json(uris.join(plan.study_dir, "summary.json"), summary, sort_keys=False)
    tracking.log_dict(summary, "summary.json")
    return summary, (table, seed_table)


def write_report(trials: list[dict], seed_table: str, task, study_dir: str) -> str:
    """table.csv, table.md, the plots and points.md into <study>/report/ and the study's MLflow
    run; returns the trial table."""
    with tempfile.TemporaryDirectory(prefix="lact-tune-") as tmp:
        table, files = report.write_all(trials, task.dev_metric, tmp)
        files.append(os.path.join(tmp, "points.md"))
        with open(files[-1], "w") as f:
            f.write(seed_table + "\n")
        for path in files:
            tracking.log_artifact(path, artifact_path="report")
        fs, path = uris.filesystem(uris.join(study_dir, "report"))
        fs.put(tmp + "/", path, recursive=True)
    return table


def print_study(plan: StudyPlan, summary: dict, table: str, seed_table: str) -> None:
    study, metric = plan.study, plan.task.dev_metric
    trials, best = summary["trials"], summary["best"]
    print(f"\nstudy {study.name}: {len(trials)} trials, dev {metric} (lower is better)\n")
    print(table)
    if summary["comparisons"] or len(summary["points"]) < len(trials):
        print(f"\nper point over seeds (dev {metric}; intervals against {summary['reference']}):\n")
        print(seed_table)
    for p, reason in skipped_points(study):
        print(f"skipped: {reason}")
    registered = best and best["model_uri"]
    print(f"\nbest: {best['trial_id'] if best else 'none completed'}"
          + (f" -> {registered}" if registered else ""))
    print(f"summary: {uris.join(plan.study_dir, 'summary.json')}")


def tune_config(study: DictConfig, base: DictConfig):
    """ASHA on the dev score (CER or NLL; every Train report is one Tune iteration)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    scheduler = None
    if study.scheduler.asha:
        # Rungs stop before the last evaluation: a trial stopped there would lose its finish step.
        scheduler = ASHAScheduler(time_attr="training_iteration",
                                  max_t=max(evaluations(base) - 1, study.scheduler.grace_period),
                                  grace_period=study.scheduler.grace_period,
                                  reduction_factor=study.scheduler.reduction_factor,
                                  stop_last_trials=False)
    return tune.TuneConfig(metric="dev_score", mode="min", scheduler=scheduler,
                           max_concurrent_trials=study.resources.max_concurrent_trials)


def describe(result, study: DictConfig, storage: str, max_steps: int) -> dict:
    """One trial's row: its point, what it trained, its best dev score and how it ended."""
    point = result.config["params"]
    metrics = result.metrics or {}
    trial_id = metrics.get("trial_id") or _trial_id_from_path(result.path)
    frame = result.metrics_dataframe
    curve = []
    if frame is not None and "dev_score" in frame:
        frame = frame.dropna(subset=["dev_score"])
        curve = list(zip(frame["time_total_s"].astype(float), frame["dev_score"].astype(float)))
    finished = read_json_or_none(uris.join(storage, train_run_name(trial_id), "summary.json"))
    units = read_json_or_none(uris.join(storage, train_run_name(trial_id), DEV_UNITS_FILE)) or {}
    status = ("error" if result.error else "completed" if finished
              else "stopped" if curve else "not started")
    return {"trial_id": trial_id, "params": point, "settings": settings(study, point),
            "metric": min((c[1] for c in curve), default=None), "status": status,
            # a finished run's own summary counts its steps; Tune may not have seen the last report
            "steps": int(finished["steps"] if finished else metrics.get("step", 0)),
            "seconds": float(metrics.get("time_total_s", 0.0)),
            "curve": curve, "mlflow_run_id": (finished or {}).get("mlflow_run_id"),
            "model_uri": (finished or {}).get("model_uri"), "units": units.get("units")}


def settings(study: DictConfig, point: dict) -> dict:
    """The values a trial really trained with (its point over the base config and defaults)."""
    cfg = trial_config(study, point)
    m = LaCTAudioConfig.from_dict(model_fields(cfg))
    flags = {"model.config.use_momentum": m.use_momentum, "model.config.use_muon": m.use_muon}
    rule = next(name for name, values in UPDATE_RULES.items() if values == flags)
    return {"arm": point.get("arm", "lact"), "update_rule": rule, "chunk_size": m.chunk_size,
            "window_size": m.window_size, "num_lact_heads": m.num_lact_heads, "base_lr": m.base_lr,
            "lr": cfg.optim.lr, "seed": cfg.train.seed}


def register_best(best: dict, study: DictConfig) -> str | None:
    """The best completed trial's logged model, registered under the task/architecture name."""
    cfg = trial_config(study, best["params"])
    if not cfg.tracking.register or not best["model_uri"]:
        return None
    name = tracking.registered_name(cfg.task, cfg.model.architecture, cfg.tracking.registered_name)
    return tracking.register(best["model_uri"], name, cfg.tracking.alias)


def _trial_id_from_path(path: str) -> str:
    match = re.search(r"_([0-9a-f]{5}_\d{5})", os.path.basename(path.rstrip("/")))
    return match.group(1) if match else os.path.basename(path.rstrip("/"))


