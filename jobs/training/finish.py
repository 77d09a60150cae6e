"""The finish step of a training run: over Ray Train's result, pick the best checkpoint, score
it on the test split, log curves and the model to MLflow (registered with an alias when the
config says so), and write the run's summary.json."""

from __future__ import annotations

import os
import tempfile

from jobs.runs import tracking
from jobs.runs.model_io import load_checkpoint_dir
from jobs.runs.storage import checkpoint_uri
from pipeline.files import write_json
from jobs.tasks import task_named
from jobs.tasks.scoring import evaluate_split
from jobs.training.phases import Phases
from jobs.training.plan import RunPlan
from pipeline import uri as uris


def best_checkpoint(result):
    """(checkpoint, its reported metrics) with the lowest dev score; the latest if none kept."""
    best = sorted(result.best_checkpoints or [], key=lambda cm: cm[1]["dev_score"])
    return best[0] if best else (result.checkpoint, result.metrics)


def finish(plan: RunPlan, result, train_seconds: float, run_id: str, tracking_uri: str,
           phases: Phases, register: bool | None = None) -> dict:
    """Log, register and summarise a finished run (inside its active MLflow run).

    register: override the config's tracking.register (Tune registers only its best trial)."""
    cfg, task = plan.cfg, plan.task
    register = cfg.tracking.register if register is None else register
    best_ckpt, best_metrics = best_checkpoint(result)
    with tempfile.TemporaryDirectory(prefix="lact-best-") as tmp:
        local = best_ckpt.to_directory(os.path.join(tmp, "best_checkpoint"))
        model, meta = load_checkpoint_dir(local)
        tracking.log_artifact(os.path.join(local, "model.pt"), artifact_path="best_checkpoint")
        tracking.log_artifact(os.path.join(local, "meta.json"), artifact_path="best_checkpoint")
        test_metrics = evaluate_split(model, cfg, plan.splits["test"].uri) if "test" in plan.splits else {}
        phases.done("best_and_test")
        history = metric_history(run_id)
        final = {f"test_{k}": v for k, v in test_metrics.items() if isinstance(v, float)}
        final.update(train_seconds=train_seconds, parameters=plan.parameters)
        tracking.log_metrics(final)
        tracking.set_tags({"best_checkpoint": checkpoint_uri(best_ckpt, plan.storage),
                         "latest_checkpoint": checkpoint_uri(result.checkpoint, plan.storage) or ""})
        tracking.log_curves(run_id, tmp, task)
        phases.done("log_metrics_and_plots")
        name = (tracking.registered_name(task.name, plan.architecture, cfg.tracking.registered_name)
                if register else None)
        model_uri = tracking.log_and_register(model, meta, name, cfg.tracking.alias if name else None)
        phases.done("log_and_register_model")

    # the first window includes warm-up (compilation, data start), so it is left out when others exist
    throughput = history.get("audio_seconds_per_second", [])
    summary = {
        "name": cfg.name, "run_name": plan.run_name, "run_dir": plan.run_uri, "task": task.name,
        "architecture": plan.architecture, "strategy": cfg.train.strategy,
        "num_workers": cfg.train.num_workers, "parameters": plan.parameters,
        "steps": int(result.metrics.get("step", 0)),
        "skipped_batches": int(result.metrics.get("skipped_batches", 0)),
        "start_step": int(result.metrics.get("start_step", 0)),
        "train_seconds": round(train_seconds, 2),
        "audio_seconds_per_second": _mean(throughput[1:] or throughput),
        "steps_per_second": _mean(history.get("steps_per_second", [])),
        "dev": {k.removeprefix("dev_"): v for k, v in best_metrics.items()
                if k.startswith("dev_") and k != "dev_score"},
        "test": test_metrics, "best_checkpoint": checkpoint_uri(best_ckpt, plan.storage),
        "latest_checkpoint": checkpoint_uri(result.checkpoint, plan.storage),
        "mlflow_run_id": run_id, "tracking_uri": tracking_uri, "model_uri": model_uri,
    }
    write_json(uris.join(plan.run_uri, "summary.json"), summary, sort_keys=False)
    tracking.log_dict(summary, "summary.json")
    phases.done("summary")
    summary["phase_seconds"] = phases.rounded()
    return summary


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def metric_history(run_id: str) -> dict[str, list[float]]:
    history = tracking.metric_history(run_id, ("audio_seconds_per_second", "steps_per_second", "train_loss"))
    return {key: [m.value for m in metrics] for key, metrics in history.items()}


def summary_table(s: dict) -> str:
    rows = [("model", f"{s['task']} / {s['architecture']} ({s['strategy']}, {s['num_workers']} workers)"),
            ("parameters", f"{s['parameters']:,}"),
            ("steps", f"{s['steps']} (skipped batches: {s['skipped_batches']})"),
            ("wall time", f"{s['train_seconds']:.1f} s"),
            ("throughput", f"{s['audio_seconds_per_second']:.1f} audio s/s, "
                           f"{s['steps_per_second']:.2f} steps/s")]
    for split in ("dev", "test"):
        values = s.get(split) or {}
        shown = ", ".join(f"{m} {values[m]:.4f}" for m in task_named(s["task"]).shown_metrics
                          if m in values)
        if shown:
            rows.append((split, shown))
    rows += [("best checkpoint", s["best_checkpoint"]), ("MLflow run", s["mlflow_run_id"]),
             ("model", s["model_uri"] or "-"), ("summary", uris.join(s["run_dir"], "summary.json"))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
