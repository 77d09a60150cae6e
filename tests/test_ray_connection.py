"""Reaching Ray without a cluster: the token lookup, what a remote job carries, the Jobs API address,
`submit`'s argument handling, and the one-line errors (exit 2) for what a user gets wrong."""

from __future__ import annotations

import argparse

import pytest

from jobs import cli
from jobs.commands.submit import entrypoint, split_own_options
from pipeline import ray_connection
from pipeline.errors import UserError


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_token_lookup_order(clean_env, tmp_path):
    assert ray_connection.auth_token() is None
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    clean_env.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    assert ray_connection.auth_token() == "from-file"
    clean_env.setenv("RAY_AUTH_TOKEN", "from-env")
    assert ray_connection.auth_token() == "from-env"
    clean_env.delenv("RAY_AUTH_TOKEN")
    clean_env.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    with pytest.raises(UserError, match="cannot read the Ray token file"):
        ray_connection.auth_token()


def test_remote_work_carries_code_and_only_the_settings_asked_for(clean_env):
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://laptop:5000")     # the cluster has its own
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "k")
    modules = ray_connection.job_runtime_env()
    assert "env_vars" not in modules                                  # nothing the user did not ask for
    assert sorted(p.rsplit("/", 1)[1] for p in modules["py_modules"]) == ["jobs", "kernels", "models", "pipeline"]
    submitted = ray_connection.job_runtime_env(working_dir=True, env_vars={"LACT_AUDIO_HOME": "s3://b/runs"})
    assert submitted["working_dir"] == str(ray_connection.PROJECT_ROOT) and "py_modules" not in submitted
    assert submitted["env_vars"] == {"LACT_AUDIO_HOME": "s3://b/runs"}
    assert ".venv" in submitted["excludes"] and "runs" in submitted["excludes"]


def test_only_named_non_secret_settings_are_sent(clean_env):
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert ray_connection.sendable_env(["MLFLOW_TRACKING_URI", "RAY_TRAIN_ENABLE_PRINT_PATCH=0"]) == {
        "MLFLOW_TRACKING_URI": "http://mlflow:5000", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
    assert ray_connection.sendable_env(None) == {}
    for item in ("AWS_SECRET_ACCESS_KEY=x", "AWS_SESSION_TOKEN=x", "AWS_ACCESS_KEY_ID=x", "MLFLOW_TRACKING_PASSWORD=x",
                 "RAY_AUTH_TOKEN=x", "DB=postgresql://u:hunter2@db/mlflow"):
        with pytest.raises(UserError, match="a credential is not sent with a job"):
            ray_connection.sendable_env([item])
    with pytest.raises(UserError, match="this shell has no NOT_SET_HERE"):
        ray_connection.sendable_env(["NOT_SET_HERE"])
    with pytest.raises(UserError, match="expected NAME or NAME=VALUE"):
        ray_connection.sendable_env(["=x"])


def test_a_credential_given_to_submit_is_refused_in_one_line(clean_env, capsys):
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "do-not-send")
    # Refused before any address is looked for or anything is sent.
    assert cli.main(["submit", "train", "--config", "configs/demo-asr.yaml", "--env", "AWS_SECRET_ACCESS_KEY"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a credential is not sent" in err and "do-not-send" not in err


def test_the_local_token_file_is_created_owner_only(tmp_path):
    import os
    import stat

    from jobs.cluster.local import write_private

    path = tmp_path / "auth_token"
    path.write_text("old")
    path.chmod(0o644)                       # a file left by an earlier run keeps no wider mode
    old_umask = os.umask(0)                 # even with a permissive umask
    try:
        assert write_private(path, "t0k3n") == "t0k3n"
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "t0k3n"


def test_jobs_api_address(clean_env):
    with pytest.raises(UserError, match="no Ray Jobs address"):
        ray_connection.submission_address(None)
    clean_env.setenv("RAY_ADDRESS", "127.0.0.1:6379")   # a GCS address is not the Jobs API
    with pytest.raises(UserError):
        ray_connection.submission_address(None)
    clean_env.setenv("RAY_API_SERVER_ADDRESS", "http://127.0.0.1:8265")
    assert ray_connection.submission_address(None) == "http://127.0.0.1:8265"
    assert ray_connection.submission_address("10.0.0.1:8265") == "http://10.0.0.1:8265"   # --address wins


def test_unreachable_jobs_api_is_one_line(clean_env, capsys):
    clean_env.setenv("RAY_API_SERVER_ADDRESS", "http://127.0.0.1:8265")   # overridden by --address
    assert cli.main(["jobs", "list", "--address", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the Ray Jobs API at http://127.0.0.1:1" in err


def test_submit_keeps_its_own_options_and_checks_the_command():
    args = argparse.Namespace(args=["--config", "configs/demo-asr.yaml", "--address", "http://h:8265",
                                    "train.max_steps=2", "--wait", "--env", "A=1", "--env=B"],
                              address=None, wait=False, env=[])
    rest = split_own_options(args)
    assert rest == ["--config", "configs/demo-asr.yaml", "train.max_steps=2"]
    assert args.address == "http://h:8265" and args.wait is True and args.env == ["A=1", "B"]
    assert entrypoint("train", rest) == "lact-audio train --config configs/demo-asr.yaml train.max_steps=2"
    assert entrypoint("preprocess", ["--corpus", "x y", "--input", "i", "--output", "o"]).endswith("--corpus 'x y' "
                                                                                                 "--input i --output o")
    with pytest.raises(SystemExit) as exit_:
        entrypoint("train", ["--no-such-flag"])
    assert exit_.value.code == 2
    with pytest.raises(UserError, match="--address needs a value"):
        split_own_options(argparse.Namespace(args=["--address"], address=None, wait=False))


def test_submit_kinds_are_commands():
    parser = cli.build_parser()
    for kind in ("preprocess", "train", "tune", "evaluate", "nightly"):
        assert parser.parse_args(["submit", kind]).kind == kind
    with pytest.raises(SystemExit):
        parser.parse_args(["submit", "demo"])


def test_cluster_status_and_down_without_a_cluster(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LACT_AUDIO_HOME", str(tmp_path))
    for action in ("status", "down"):
        assert cli.main(["cluster", action]) == 2
        assert "no local cluster" in capsys.readouterr().err
    assert cli.main(["cluster", "up", "--workers", "-1"]) == 2
