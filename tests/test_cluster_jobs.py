"""The local multi-node stack end to end, with real services on loopback: synthesise a tiny corpus
onto the S3 server, submit preprocess and train as Ray jobs (Jobs API, token auth), and find the
shards and checkpoints on S3 and the run and the registered model in MLflow. A submission without
the token, or with a wrong one, is refused in one line."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.integration

TINY_TRAIN = ["data.batch_size=4", "train.max_steps=2", "train.eval_every=2", "train.log_every=1",
              "optim.warmup_steps=1", "train.cpus_per_worker=1", "train.torch_threads=1",
              "model.config.hidden_size=32", "model.config.num_layers=1", "model.config.num_attention_heads=2",
              "model.config.num_lact_heads=2", "model.config.chunk_size=512", "model.config.window_size=32"]


def cli(stack, *args, env=None, timeout=600):
    return subprocess.run([stack.cli, *args], env=env or stack.env, capture_output=True, text=True, timeout=timeout)


def s3_keys(stack, prefix: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=stack.state["s3_endpoint"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="lact-audio", Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def test_submission_without_the_right_token_is_refused(local_stack):
    no_token = {k: v for k, v in local_stack.env.items() if not k.startswith("RAY_AUTH")}
    calls = {  # run together: each is mostly the CLI's start-up
        "no token": (["submit", "train", "--config", "configs/demo-asr.yaml"], no_token),
        "wrong token": (["jobs", "list"], {**no_token, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}),
        "no cluster": (["jobs", "list", "--address", "http://127.0.0.1:1"], local_stack.env),
    }
    procs = {name: subprocess.Popen([local_stack.cli, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True) for name, (args, env) in calls.items()}
    errors = {}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (name, err[-2000:])
        assert err.strip().count("\n") == 0, (name, err)   # one line, no traceback
        errors[name] = err
    assert "needs a token" in errors["no token"]
    assert "token was refused" in errors["wrong token"]
    assert "cannot reach" in errors["no cluster"]


@pytest.fixture(scope="module")
def features_on_s3(local_stack):
    """A tiny corpus synthesised onto the S3 server and preprocessed by a Ray job: the features' URI."""
    raw, features = "s3://lact-audio/raw", "s3://lact-audio/features"
    synth = cli(local_stack, "synth", "--layout", "librispeech", "--out", raw, "--utterances-per-split", "3")
    assert synth.returncode == 0, synth.stderr[-2000:]
    prep = cli(local_stack, "submit", "preprocess", "--corpus", "librispeech", "--input", raw, "--output", features,
               "--audio-tokens", "mulaw", "--quiet", "--wait")
    assert prep.returncode == 0 and ": SUCCEEDED" in prep.stdout, prep.stdout[-3000:] + prep.stderr[-2000:]
    return features


def test_preprocess_as_a_ray_job_writes_shards_to_s3(local_stack, features_on_s3):
    shards = [k for k in s3_keys(local_stack, "features/") if k.endswith(".parquet") and "quarantine" not in k]
    assert {k.split("/")[1] for k in shards} == {"train-clean-100", "dev-clean", "test-clean"}
    assert "features/train-clean-100/manifest.json" in s3_keys(local_stack, "features/")


def test_train_as_a_ray_job_checkpoints_to_s3_and_registers_the_model(local_stack, features_on_s3):
    import mlflow

    features, train = features_on_s3, "s3://lact-audio/train"
    fit = cli(local_stack, "submit", "train", "--config", "configs/demo-asr.yaml", f"data.root={features}",
              f"output={train}", "tracking.experiment=cluster-jobs", *TINY_TRAIN, "--wait")
    assert fit.returncode == 0 and ": SUCCEEDED" in fit.stdout, fit.stdout[-3000:] + fit.stderr[-2000:]
    assert any("/checkpoint_" in k for k in s3_keys(local_stack, "train/"))

    # Ordinary Ray jobs: Ray's own CLI lists them.
    ray_list = subprocess.run([local_stack.cli.replace("lact-audio", "ray"), "job", "list"], env=local_stack.env,
                              capture_output=True, text=True, timeout=120)
    assert ray_list.returncode == 0 and ray_list.stdout.count("SUCCEEDED") >= 2, ray_list.stderr[-2000:]

    client = mlflow.MlflowClient(tracking_uri=local_stack.state["mlflow_uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("cluster-jobs").experiment_id])
    assert run.info.status == "FINISHED" and "dev_cer" in run.data.metrics
    versions = client.search_model_versions(f"run_id='{run.info.run_id}'")
    assert len(versions) == 1 and versions[0].source
    # Artifacts go through the MLflow server to the S3 server (the run's plots, the logged model).
    artifacts = s3_keys(local_stack, "mlartifacts/")
    ids = [run.info.run_id, getattr(versions[0], "model_id", None) or run.info.run_id]
    assert any(i in k for k in artifacts for i in ids), artifacts[:20]
