"""jobs/runs/tracking.py, the one module that talks to MLflow, on a SQLite store in a temporary
work directory: the active run, a run addressed by id (the nightly's), the metric history, the
child runs a study closes, and the registry (versions of a run, aliases, a logged model loaded)."""

from __future__ import annotations

import pytest
import torch

from jobs.runs import tracking


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("LACT_AUDIO_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tracking.setup("tracking-test")


def test_active_run_and_run_by_id(store):
    from mlflow.tracking import MlflowClient

    parent_id = tracking.start_run(run_name="parent")
    tracking.log_params({"a": 1})
    tracking.set_tags({"kind": "test"})
    tracking.end_run()
    child_id = tracking.start_run(run_name="child", tags={"mlflow.parentRunId": parent_id})
    tracking.log_metrics({"x": 2.0})
    tracking.end_run()
    running = tracking.start_run(run_name="left running", tags={"mlflow.parentRunId": parent_id})
    tracking.end_run()
    MlflowClient().set_terminated(running, "RUNNING")   # a trial that never reached its finish
    tracking.kill_running_children(parent_id)
    client = MlflowClient()
    assert client.get_run(parent_id).data.params == {"a": "1"}
    assert client.get_run(parent_id).data.tags["kind"] == "test"
    assert client.get_run(child_id).info.status == "FINISHED"
    assert client.get_run(running).info.status == "KILLED"
    assert [m.value for m in tracking.metric_history(child_id, ["x"])["x"]] == [2.0]

    night = tracking.RunById.create("tracking-test", run_name="night")
    night.set_tags({"action": "kept"})
    night.log_metric("score", 0.5)
    night.log_param("margin", 0.01)
    night.end("FAILED")
    run = client.get_run(night.run_id)
    assert (run.info.status, run.data.tags["action"], run.data.metrics["score"],
            run.data.params["margin"]) == ("FAILED", "kept", 0.5, "0.01")


def test_registry_versions_aliases_and_loaded_model(store):
    assert tracking.version_with_alias("tracking-model", "champion") is None   # no such model
    model = torch.nn.Linear(2, 1)
    with tracking.started_run(run_name="train") as run_id:
        uri = tracking.log_and_register(model, {"task": "asr"}, "tracking-model", "champion")
    assert uri == "models:/tracking-model@champion"
    assert tracking.versions_of_run("tracking-model", run_id) == [1]
    assert tracking.version_with_alias("tracking-model", "champion") == "1"
    tracking.set_alias("tracking-model", "previous", "1")
    tracking.tag_version("tracking-model", "1", {"note": 3})
    loaded, meta = tracking.load_logged_model("models:/tracking-model@previous")
    assert meta == {"task": "asr"}
    torch.testing.assert_close(loaded.weight, model.weight)
