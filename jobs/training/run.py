"""The driver of `lact-audio train`, in three steps:

    plan = make_plan(cfg)                                     # check everything, start nothing
    trainer = build_trainer(plan, spec, train_run_config(plan))   # Ray Train's TorchTrainer
    summary = finish(plan, result, ...)                       # best model: test, log, register

`lact-audio tune` runs the same steps per trial (jobs/tuning/trial.py).
"""

from __future__ import annotations

from omegaconf import DictConfig

# Re-exported: the demo, evaluation and other jobs use them from here.
from jobs.tasks.scoring import evaluate_split  # noqa: F401
from jobs.runs.storage import RUN_FILE, write_json  # noqa: F401


def run_training(cfg: DictConfig, resume: bool = False, address: str | None = None,
                 echo: bool = True, parent_run_id: str | None = None) -> dict:
    """Train per `cfg`; returns the summary (also written to <run dir>/summary.json).

    parent_run_id: log the run as an MLflow child of that run (a nightly retraining run)."""
    from jobs.runs import tracking
    from jobs.training.finish import finish, summary_table
    from jobs.training.launch import build_trainer, fit, train_run_config
    from jobs.training.phases import Phases
    from jobs.training.plan import make_plan
    from pipeline.ray_connection import connect

    phases = Phases()  # wall seconds of each step, in the summary
    plan = make_plan(cfg, resume)
    phases.done("validate")
    with tracking.run_for(plan, parent_run_id) as (run_id, tracking_uri):
        phases.done("mlflow_start")
        connect(address)
        spec = plan.worker_spec(tracking_uri, run_id, tracking.start_step_logger(tracking_uri, run_id))
        trainer = build_trainer(plan, spec, train_run_config(plan))
        phases.done("dataset")
        result, seconds = fit(trainer, spec, plan.run_name, phases)
        summary = finish(plan, result, seconds, run_id, tracking_uri, phases)
    if echo:
        print(summary_table(summary))
    return summary
