"""MLflow tracking, the one module that talks to MLflow: the embedded default store, runs (the
active one, or one addressed by id), per-step logging from rank 0, plots, the logged, registered
and loaded model and the registry's versions and aliases.

Default: a SQLite store `<work dir>/mlflow.db` with artifacts in `<work dir>/mlartifacts`, both
absolute (Train workers run in another cwd). `MLFLOW_TRACKING_URI` selects a server instead.
MLflow itself is imported inside the functions: it takes seconds, and Train workers, inference
replicas loading a checkpoint and `lact-audio --help` never need it.
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


def use_store() -> str:
    """Point mlflow at the store (no experiment: reading a model or the registry)."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def setup(experiment: str) -> str:
    """Point mlflow at the store and the experiment (created with its artifact location)."""
    import mlflow

    uri = use_store()
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


def start_run(run_id: str | None = None, run_name: str | None = None, tags: dict | None = None) -> str:
    """Make a run the active one (run_id: continue that one); returns its id. End it with end_run."""
    import mlflow

    return mlflow.start_run(run_id=run_id, run_name=run_name, tags=tags).info.run_id


def end_run() -> None:
    """End the active run (FINISHED)."""
    import mlflow

    mlflow.end_run()


@contextmanager
def started_run(run_id: str | None = None, run_name: str | None = None):
    """An active MLflow run for the length of a block (run_id: continue that one); yields its id.
    It ends FINISHED, or FAILED when the block raises."""
    import mlflow

    with mlflow.start_run(run_id=run_id, run_name=run_name) as run:
        yield run.info.run_id


# ---- the active run ----------------------------------------------------------------------------
def log_params(params: dict) -> None:
    import mlflow

    mlflow.log_params(params)


def log_metrics(metrics: dict) -> None:
    import mlflow

    mlflow.log_metrics(metrics)


def set_tags(tags: dict) -> None:
    import mlflow

    mlflow.set_tags(tags)


def log_dict(value: dict, name: str) -> None:
    import mlflow

    mlflow.log_dict(value, name)


def log_artifact(path: str, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(path, artifact_path=artifact_path)


def log_artifacts(local_dir: str, artifact_path: str | None = None) -> None:
    """A whole folder into the active run."""
    import mlflow

    mlflow.log_artifacts(local_dir, artifact_path=artifact_path)


# ---- a run addressed by its id -------------------------------------------------------------------
class RunById:
    """A run written through the client by its id, while other runs come and go as the active
    one (the nightly's run around its training run)."""

    def __init__(self, run_id: str):
        from mlflow.tracking import MlflowClient

        self.run_id = run_id
        self.client = MlflowClient()

    @classmethod
    def create(cls, experiment: str, run_name: str) -> RunById:
        """A new run in `experiment` (after setup(experiment))."""
        import mlflow
        from mlflow.tracking import MlflowClient

        experiment_id = mlflow.get_experiment_by_name(experiment).experiment_id
        return cls(MlflowClient().create_run(experiment_id, run_name=run_name).info.run_id)

    def set_tags(self, tags: dict) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    def log_metric(self, key: str, value: float) -> None:
        self.client.log_metric(self.run_id, key, value)

    def log_param(self, key: str, value) -> None:
        self.client.log_param(self.run_id, key, value)

    def log_dict(self, value: dict, name: str) -> None:
        self.client.log_dict(self.run_id, value, name)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def end(self, status: str) -> None:
        """status: FINISHED, FAILED or KILLED."""
        self.client.set_terminated(self.run_id, status)


def kill_running_children(parent_run_id: str) -> None:
    """Child runs of `parent_run_id` still RUNNING (trials that never reached their finish step)
    are marked KILLED."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    for run in client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent_run_id}' "
                                  "and attributes.status = 'RUNNING'"):
        client.set_terminated(run.info.run_id, "KILLED")


def metric_history(run_id: str, keys) -> dict[str, list]:
    """key -> the run's logged values of that metric (mlflow Metric objects), in step order."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    return {key: sorted(client.get_metric_history(run_id, key), key=lambda m: m.step) for key in keys}


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
    """Loss and dev-metric curves (the task object's shown metrics) from the run's metric
    history -> PNGs logged to the run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = {"train_loss.png": ["train_loss"],
             "dev_metrics.png": [f"dev_{m}" for m in task.shown_metrics]}
    written = []
    for filename, keys in plots.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False
        for key, history in metric_history(run_id, keys).items():
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
            log_artifact(path, artifact_path="plots")
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


def load_logged_model(model_uri: str):
    """(model on the CPU, the metadata it was logged with) from models:/, runs:/ or
    mlflow-artifacts:/ (MLflow's errors pass through)."""
    import mlflow

    use_store()
    info = mlflow.models.get_model_info(model_uri)
    model = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    return model, dict(info.metadata or {})


def logged_model_run(model_uri: str) -> tuple[str, dict]:
    """(run id, params) of the run that logged the model at models:/, runs:/ or mlflow-artifacts:/."""
    import mlflow
    from mlflow.tracking import MlflowClient

    use_store()
    run_id = mlflow.models.get_model_info(model_uri).run_id
    return run_id, MlflowClient().get_run(run_id).data.params


# ---- the registry --------------------------------------------------------------------------------
def version_with_alias(name: str, alias: str) -> str | None:
    """The version `name@alias` points at; None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def versions_of_run(name: str, run_id: str) -> list[int]:
    """The versions of `name` that the run `run_id` registered."""
    from mlflow.tracking import MlflowClient

    return [int(v.version) for v in MlflowClient().search_model_versions(f"name='{name}' and run_id='{run_id}'")]


def set_alias(name: str, alias: str, version: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().set_registered_model_alias(name, alias, version)


def tag_version(name: str, version: str, tags: dict) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
