"""The driver of `lact-audio train`, in three steps:

    plan = make_plan(cfg)                                     # check everything, start nothing
    trainer = build_trainer(plan, spec, train_run_config(plan))   # Ray Train's TorchTrainer
    summary = finish(plan, result, ...)                       # best model: test, log, register

`train_planned` runs the last two inside the plan's MLflow run; `lact-audio tune` calls it per
trial (jobs/tuning/trial.py).
"""

from __future__ import annotations

from contextlib import contextmanager

from omegaconf import DictConfig

from jobs.runs import tracking
from jobs.runs.storage import RUN_FILE
from pipeline.files import write_json
from jobs.training.config import as_plain, flatten
from jobs.training.finish import finish, summary_table
from jobs.training.launch import build_trainer, fit, train_run_config
from jobs.training.phases import Phases
from jobs.training.plan import RunPlan, make_plan
from pipeline import uri as uris
from pipeline.ray_connection import connect


def run_training(cfg: DictConfig, resume: bool = False, address: str | None = None,
                 echo: bool = True, parent_run_id: str | None = None) -> dict:
    """Train per `cfg`; returns the summary (also written to <run dir>/summary.json).

    parent_run_id: log the run as an MLflow child of that run (a nightly retraining run)."""
    phases = Phases()  # wall seconds of each step, in the summary
    plan = make_plan(cfg, resume)
    phases.done("validate")
    summary, _ = train_planned(plan, phases, address=address, parent_run_id=parent_run_id)
    if echo:
        print(summary_table(summary))
    return summary


def train_planned(plan: RunPlan, phases: Phases, address: str | None = None,
                  parent_run_id: str | None = None, tags: dict | None = None,
                  params: dict | None = None, callbacks: list | None = None,
                  register: bool | None = None) -> tuple[dict, object]:
    """The train sequence of a planned run inside its MLflow run: workers' spec, Ray Train's
    trainer, fit, finish. Returns (summary, Ray Train's result).

    tags, params: logged to the run first (a Tune trial's study and point); callbacks: Ray Train
    run callbacks (Tune's report callback); register: override the config's tracking.register."""
    with mlflow_run_for(plan, parent_run_id) as (run_id, tracking_uri):
        phases.done("mlflow_start")
        if tags:
            tracking.set_tags(tags)
        if params:
            tracking.log_params(params)
        connect(address)  # inside a Tune trial Ray is up already: nothing to do
        spec = plan.worker_spec(tracking_uri, run_id, tracking.start_step_logger(tracking_uri, run_id))
        trainer = build_trainer(plan, spec, train_run_config(plan, callbacks))
        phases.done("dataset")
        result, seconds = fit(trainer, spec, plan.run_name, phases)
        summary = finish(plan, result, seconds, run_id, tracking_uri, phases, register=register)
    return summary, result


@contextmanager
def mlflow_run_for(plan: RunPlan, parent_run_id: str | None = None):
    """The MLflow run of a training plan, continued on resume; yields (run_id, tracking URI).

    A fresh run gets the config, the data identity and the size as params, and its id goes into
    the run file so that `--resume` (or a restarted Tune trial) logs into the same run. With
    parent_run_id the run is a child (a Tune trial under its study's run). The run ends
    FINISHED also when the block raises."""
    cfg = plan.cfg
    uri = tracking.setup(cfg.tracking.experiment)
    run_id = plan.previous.get("mlflow_run_id") if plan.previous else None
    tags = {"mlflow.parentRunId": parent_run_id} if parent_run_id and not run_id else None
    active_id = tracking.start_run(run_id=run_id, run_name=None if run_id else plan.run_name, tags=tags)
    try:
        if plan.previous is None:
            tracking.log_params({k: str(v)[:500] for k, v in flatten(cfg).items()})
            tracking.log_params({f"data.{k}": str(v) for k, v in plan.data_identity.items()})
            tracking.log_params({"model.parameters": plan.parameters, "run_dir": plan.run_uri})
            tracking.set_tags({"task": cfg.task, "architecture": plan.architecture,
                               "strategy": cfg.train.strategy})
        write_json(uris.join(plan.run_uri, RUN_FILE), {
            "mlflow_run_id": active_id, "tracking_uri": uri,
            "config": as_plain(cfg)}, sort_keys=False)
        yield active_id, uri
    finally:
        tracking.end_run()
