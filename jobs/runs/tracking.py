"""MLflow tracking: the embedded default store, per-step logging from rank 0, plots, the logged
and registered model.

Default: a SQLite store `<work dir>/mlflow.db` with artifacts in `<work dir>/mlartifacts`, both
absolute (Train workers run in another cwd). `MLFLOW_TRACKING_URI` selects a server instead.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

from pipeline import uri as uris

ARTIFACT_DIR = "mlartifacts"


def tracking_uri() -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    home = uris.work_home()
    os.makedirs(home, exist_ok=True)
    return f"sqlite:///{os.path.join(home, 'mlflow.db')}"


def artifact_location() -> str | None:
    """Beside the SQLite file for the embedded store; the server decides otherwise."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    return "file://" + os.path.join(uris.work_home(), ARTIFACT_DIR)


def setup(experiment: str) -> str:
    """Point mlflow at the store and the experiment (created with its artifact location)."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        try:
            location = artifact_location()
            mlflow.create_experiment(experiment, artifact_location=location and
                                     f"{location}/{experiment}")
        except Exception:  # created meanwhile by a concurrent run
            if mlflow.get_experiment_by_name(experiment) is None:
                raise
    mlflow.set_experiment(experiment)
    return uri


@contextmanager
def run_for(plan, parent_run_id: str | None = None):
    """The MLflow run of a training plan, continued on resume; yields (run_id, tracking URI).

    A fresh run gets the config, the data identity and the size as params, and its id goes into
    the run file so that `--resume` (or a restarted Tune trial) logs into the same run. With
    parent_run_id the run is a child (a Tune trial under its study's run)."""
    import mlflow

    from jobs.training.config import as_plain, flatten
    from jobs.runs.storage import RUN_FILE, write_json

    cfg = plan.cfg
    uri = setup(cfg.tracking.experiment)
    run_id = plan.previous.get("mlflow_run_id") if plan.previous else None
    tags = {"mlflow.parentRunId": parent_run_id} if parent_run_id and not run_id else None
    active = mlflow.start_run(run_id=run_id, run_name=None if run_id else plan.run_name, tags=tags)
    try:
        if plan.previous is None:
            mlflow.log_params({k: str(v)[:500] for k, v in flatten(cfg).items()})
            mlflow.log_params({f"data.{k}": str(v) for k, v in plan.data_identity.items()})
            mlflow.log_params({"model.parameters": plan.parameters, "run_dir": plan.run_uri})
            mlflow.set_tags({"task": cfg.task, "architecture": plan.architecture,
                             "strategy": cfg.train.strategy})
        write_json(uris.join(plan.run_uri, RUN_FILE), {
            "mlflow_run_id": active.info.run_id, "tracking_uri": uri,
            "config": as_plain(cfg)})
        yield active.info.run_id, uri
    finally:
        mlflow.end_run()


class StepLogger:
    """Per-step metrics into an existing run (created by the driver).

    Run as a small Ray actor beside the Train workers (`start_step_logger`): rank 0 sends it
    its metrics, so the workers never import MLflow or open its store (seconds of CPU on every
    run's critical path), and the actor's start overlaps the workers' start.
    """

    def __init__(self, uri: str, run_id: str):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(uri)
        self.run_id = run_id

    def log(self, metrics: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if items:
            self.client.log_batch(self.run_id, metrics=items)


def start_step_logger(uri: str, run_id: str):
    """A StepLogger actor (no CPU reserved); calls from one caller run in order, so a caller
    that waits on its last `log.remote` knows all its metrics are written."""
    import ray

    return ray.remote(num_cpus=0)(StepLogger).remote(uri, run_id)


def log_curves(run_id: str, out_dir: str, task) -> list[str]:
    """Loss and dev-metric curves from the run's metric history -> PNGs logged to the run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    from mlflow.tracking import MlflowClient

    from jobs.tasks import task_named

    client = MlflowClient()
    plots = {"train_loss.png": ["train_loss"],
             "dev_metrics.png": [f"dev_{m}" for m in task_named(task).shown_metrics]}
    written = []
    for filename, keys in plots.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False
        for key in keys:
            history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
            if history:
                ax.plot([m.step for m in history], [m.value for m in history], marker=".", label=key)
                drawn = True
        if drawn:
            ax.set_xlabel("step")
            ax.legend()
            ax.grid(alpha=0.3)
            path = os.path.join(out_dir, filename)
            fig.tight_layout()
            fig.savefig(path, dpi=90)
            mlflow.log_artifact(path, artifact_path="plots")
            written.append(path)
        plt.close(fig)
    return written


def registered_name(task: str, architecture: str, configured: str | None) -> str:
    return configured or f"lact-audio-{task}-{architecture}"


def log_and_register(model, meta: dict, name: str | None, alias: str | None) -> str:
    """Log the model (pickled module + metadata) to the active run; register it with an alias.

    Returns the model URI `lact-audio evaluate` accepts (models:/name@alias, or the logged URI).
    """
    import mlflow

    info = mlflow.pytorch.log_model(
        model.cpu().eval(), name="model", serialization_format="pickle",
        pip_requirements=["torch==2.11.0"], metadata=meta)
    if not name:
        return info.model_uri
    return register(info.model_uri, name, alias)


def register(model_uri: str, name: str, alias: str | None) -> str:
    """Register a logged model as a new version of `name`, pointing `alias` at it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    version = mlflow.register_model(model_uri, name)
    if alias:
        MlflowClient().set_registered_model_alias(name, alias, version.version)
        return f"models:/{name}@{alias}"
    return f"models:/{name}/{version.version}"
