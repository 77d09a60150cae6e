"""`lact-audio train` / `evaluate` end to end on a real local Ray cluster, a real MLflow store and
the moto S3 server: DDP with 2 CPU workers on S3 storage and a worker process killed mid-run (one
run, asserted on by two tests), DeepSpeed ZeRO-2 bf16 on 2 CPU workers, the audio-token generator
config, unwritable storage."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid

import pytest

from jobs.training.config import load_config

pytestmark = pytest.mark.integration

TINY_MODEL = ["model.config.hidden_size=32", "model.config.num_layers=1",
              "model.config.num_attention_heads=2", "model.config.num_lact_heads=2",
              "model.config.chunk_size=512", "model.config.window_size=32"]
CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "demo-asr.yaml")
GENERATION_CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "demo-generation.yaml")


@pytest.fixture
def corpus(toy_corpus):
    return toy_corpus


@pytest.fixture(autouse=True)
def work_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.getbasetemp() / "lact-home"
    monkeypatch.setenv("LACT_AUDIO_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


def config(corpus, output, *extra, path=CONFIG):
    return load_config(path, [f"data.root={corpus}", f"output={output}", "data.batch_size=4",
                                "train.max_steps=4", "train.eval_every=2", "train.log_every=2",
                                "optim.warmup_steps=1", "train.cpus_per_worker=1", "train.torch_threads=1",
                                *TINY_MODEL, *extra])


def split_size(corpus, split: str) -> int:
    return json.loads((corpus / split / "manifest.json").read_text())["num_utterances"]


def test_unwritable_storage_fails_at_start(corpus, tmp_path):
    from jobs.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    started = time.perf_counter()
    code = main(["train", "--config", CONFIG, f"data.root={corpus}", f"output={blocker}/runs"])
    assert code == 2 and time.perf_counter() - started < 60


def test_ddp_two_workers_on_s3_then_evaluate_registered_model(corpus, ddp_run, tmp_path, capsys):
    from jobs.cli import main
    from pipeline import uri as uris

    summary = ddp_run["summary"]
    assert summary["steps"] == 40 and summary["num_workers"] == 2
    # every test utterance was scored, and a 40-step model cannot be perfect
    assert summary["test"]["utterances"] == split_size(corpus, "test-clean")
    assert 0.0 < summary["test"]["cer"] < 10.0
    assert summary["model_uri"] == "models:/lact-audio-asr-lact@candidate"
    assert summary["best_checkpoint"].startswith("s3://")
    assert uris.exists(uris.join(summary["run_dir"], "summary.json"))
    # the registered model and the best checkpoint both evaluate
    for model in (summary["model_uri"], summary["best_checkpoint"]):
        report = tmp_path / f"report-{abs(hash(model))}"
        assert main(["evaluate", "--model", model, "--data", str(corpus / "test-clean"),
                     "--report", str(report)]) == 0
        metrics = json.loads((report / "metrics.json").read_text())
        assert metrics["cer"] == pytest.approx(summary["test"]["cer"])
        assert {"cer", "wer", "per_speaker"} <= set(metrics)
        assert sum(v["utterances"] for v in metrics["per_speaker"].values()) == \
            split_size(corpus, "test-clean")
    import mlflow

    run = mlflow.get_run(summary["mlflow_run_id"])
    assert run.data.params["train.num_workers"] == "2" and "data.train_content_hash" in run.data.params
    assert {"train_loss", "lr", "audio_seconds_per_second", "dev_cer"} <= set(run.data.metrics)
    # visible memory: per layer, on every logged step, how far the fast weights moved and the
    # fast branch's share of the mixer output (training batches and the dev pass); steps the
    # killed try had logged past its checkpoint are logged again by the restarted one
    from mlflow.tracking import MlflowClient

    for name in ("fast_weight_change_layer0", "fast_share_layer0", "dev_fast_share_layer0"):
        history = MlflowClient().get_metric_history(summary["mlflow_run_id"], name)
        assert sorted({m.step for m in history}) == list(range(5, 41, 5)), name
        assert all(0.0 < m.value < 1.0 for m in history), (name, history)


def test_deepspeed_zero2_bf16_two_workers(corpus, tmp_path):
    from jobs.training.run import run_training

    summary = run_training(config(corpus, str(tmp_path / "train"), "train.num_workers=2",
                                  "train.strategy=deepspeed", "train.zero_stage=2",
                                  "train.bf16=true", "model.architecture=baseline", "name=ds2"),
                           echo=False)
    assert summary["strategy"] == "deepspeed" and summary["steps"] == 4
    assert summary["dev"]["utterances"] == split_size(corpus, "dev-clean")
    assert 0.0 < summary["dev"]["cer"] < 10.0 and os.path.isdir(summary["best_checkpoint"])


def test_generation_config_trains_and_scores_bits_per_token(corpus, tmp_path):
    from mlflow.tracking import MlflowClient

    from jobs.training.run import run_training

    summary = run_training(config(corpus, str(tmp_path / "train"), "name=gen",
                                  "data.max_audio_tokens=64", path=GENERATION_CONFIG), echo=False)
    assert summary["task"] == "generation" and summary["steps"] == 4
    # 4 steps leave the model close to uniform over 256 mu-law codes (8 bits); NLL in nats
    # (5.5) or an unmasked padding loss would fall outside
    assert 6.5 < summary["test"]["nll_bits"] < 9.0
    assert summary["test"]["utterances"] == split_size(corpus, "test-clean")
    history = MlflowClient().get_metric_history(summary["mlflow_run_id"], "dev_nll_bits")
    assert [m.step for m in history] == [2, 4]  # logged by the step-logger actor at each eval


def registered_checkpoints(s3, storage: str) -> list[str]:
    """Checkpoint folders Ray Train's controller has registered (the ones a restart loads), read
    from the run's snapshot under `storage` (an s3:// URI) with a fresh listing each time (s3: a
    boto3 client; fsspec's would answer from its listing cache)."""
    bucket, prefix = storage.removeprefix("s3://").split("/", 1)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
            if o["Key"].endswith("/checkpoint_manager_snapshot.json")]
    if not keys:
        return []
    try:
        snapshot = json.loads(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())
    except (json.JSONDecodeError, s3.exceptions.NoSuchKey):  # being rewritten right now
        return []
    return [r["checkpoint_dir_name"] for r in snapshot.get("checkpoint_results", [])]


@pytest.fixture(scope="module")
def ddp_run(toy_corpus, s3_server, tmp_path_factory):
    """One DDP run on 2 CPU workers with its storage on S3, shared by the two tests below (one Ray
    Train start instead of two): 40 steps, evaluated and checkpointed every 5, FailureConfig
    max_failures=1, and one Train worker SIGKILLed once a checkpoint is registered.
    {"summary" or "error", "killed": the pid or None, "storage": the s3:// URI, "s3": a client}."""
    import boto3
    import ray
    from ray.util.state import list_actors

    from jobs.training.run import run_training

    s3 = boto3.client("s3", endpoint_url=s3_server)
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    storage = f"s3://{bucket}/train"
    outcome = {"killed": None, "storage": storage, "s3": s3}
    with pytest.MonkeyPatch.context() as mp:   # what the autouse work_home gives each test
        mp.setenv("LACT_AUDIO_HOME", str(tmp_path_factory.getbasetemp() / "lact-home"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        cfg = config(toy_corpus, storage, "train.num_workers=2", "train.max_failures=1",
                     "train.max_steps=40", "train.eval_every=5", "train.log_every=5", "name=ddp2")

        def train():
            try:
                outcome["summary"] = run_training(cfg, echo=False)
            except BaseException as exc:  # surfaced by the tests' assertions
                outcome["error"] = exc

        thread = threading.Thread(target=train)
        thread.start()
        deadline = time.time() + 400
        while outcome["killed"] is None and thread.is_alive() and time.time() < deadline:
            # A checkpoint that is uploaded but not yet registered would be lost on a kill; Ray
            # restarts from the latest registered one, so wait for registration.
            if registered_checkpoints(s3, storage):
                # this session's cluster by address: "auto" fails when other Ray instances run here
                workers = [a for a in list_actors(address=ray.get_runtime_context().gcs_address,
                                                  filters=[("state", "=", "ALIVE")])
                           if "RayTrainWorker" in a.class_name and a.pid]
                if workers:
                    outcome["killed"] = workers[-1].pid
                    os.kill(outcome["killed"], signal.SIGKILL)
            time.sleep(0.2)
        thread.join(timeout=600)
    return outcome


def test_killed_worker_restarts_from_latest_checkpoint(ddp_run, tmp_path):
    """SIGKILL one Train worker once a checkpoint is registered: the run restarts from it
    (FailureConfig max_failures=1), completes, and every registered checkpoint is whole."""
    from mlflow.tracking import MlflowClient

    from jobs.runs.checkpoint import verify
    from pipeline import uri as uris

    assert ddp_run["killed"] is not None, "no checkpoint was registered before the run ended"
    assert "error" not in ddp_run, ddp_run.get("error")
    summary = ddp_run["summary"]
    assert summary["steps"] == 40
    assert summary["start_step"] >= 5, "the restarted run began at step 0, not at its checkpoint"
    resumed = MlflowClient().get_metric_history(summary["mlflow_run_id"], "resumed_from_step")
    assert [m.value for m in resumed] == [summary["start_step"]]
    registered = registered_checkpoints(ddp_run["s3"], ddp_run["storage"])
    assert registered
    fs, run_dir = uris.filesystem(summary["run_dir"])
    fs.invalidate_cache()
    for name in registered:
        local = tmp_path / name
        fs.get(f"{run_dir}/{name}/", str(local), recursive=True)
        assert verify(str(local))["step"] >= 5
