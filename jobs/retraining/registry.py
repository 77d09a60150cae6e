"""The MLflow model registry as the nightly sees it: which version an alias points at, scoring
a version, and moving an alias (the one step that changes what is served)."""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient


def version_with_alias(name: str, alias: str) -> str | None:
    """The version `name@alias` points at; None when the model or the alias does not exist."""
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def score_version(name: str, version: str, cfg, test_uri: str) -> dict:
    """Test metrics of one registered version on a split, the same way for every version."""
    from jobs.training.evaluation import evaluate_split
    from jobs.training.model_io import load_model

    model, _ = load_model(f"models:/{name}/{version}")
    return evaluate_split(model, cfg, test_uri)


def move_alias(name: str, alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, version)


def tag_version(name: str, version: str, tags: dict) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
