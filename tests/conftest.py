"""Shared fixtures: a real local Ray cluster, a real S3 API server (moto) on loopback, the real
LibriSpeech/Common Voice files beside the checkout.

Ray's token authentication is turned off for tests (STACK_NOTES: it is on by default in 2.60).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# A loaded 2-core machine can take over a minute to register the raylet.
os.environ.setdefault("RAY_raylet_start_wait_time_s", "240")

REPO = Path(__file__).resolve().parents[1]
REALSPEECH = REPO.parent / "shared" / "data" / "realspeech"


@pytest.fixture(scope="session")
def realspeech_dir() -> Path:
    if not REALSPEECH.is_dir():
        pytest.skip(f"real speech samples not present at {REALSPEECH}")
    return REALSPEECH


class MotoS3:
    """moto's standalone S3 server, run in this process on loopback; it can be restarted on the
    same port (its buckets live in this process's memory, so they survive, as on a real server)."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        self._server_class = ThreadedMotoServer
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
        self.server.start()
        self.host, self.port = self.server.get_host_and_port()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.stop()
        self.server._server.server_close()  # stop() leaves the socket bound; free the port

    def start(self) -> None:
        self.server = self._server_class(ip_address="127.0.0.1", port=self.port)
        self.server.start()


@pytest.fixture(scope="session")
def s3_service():
    service = MotoS3()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def s3_server(s3_service):
    """A real S3 API server (moto's standalone server) on loopback for the whole session.

    Its address goes into the standard variables before Ray starts, so Ray workers inherit it.
    """
    endpoint = s3_service.endpoint
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield endpoint
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh, empty bucket; returns its s3:// URI."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    """One local Ray cluster for the session (started after the S3 variables are set).

    More logical CPUs than cores: with 2 CPUs, two Train workers leave Ray Data none (STACK_NOTES).
    """
    import ray

    from pipeline.ray_connection import connect

    if ray.is_initialized():
        ray.shutdown()
    connect(None, num_cpus=4, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory, ray_cluster) -> Path:
    """A tiny synthesised LibriSpeech-layout corpus (6 utterances a split), preprocessed once per
    session with μ-law audio tokens, so ASR and generation runs share it. Returns the features root."""
    from pipeline.preprocess import PreprocessConfig, run_preprocess
    from pipeline.synthetic.corpus import synthesize_corpus

    root = tmp_path_factory.mktemp("toy-corpus")
    synthesize_corpus("librispeech", str(root / "raw"), utterances_per_split=6, seed=3)
    run_preprocess(PreprocessConfig(corpus="librispeech", input_uri=str(root / "raw"),
                                    output_uri=str(root / "features"), audio_tokens="mulaw",
                                    progress=False))
    return root / "features"


def processes_of_stack(cluster_id: str) -> list[int]:
    """PIDs whose environment carries the stack's LACT_CLUSTER_ID (every process `cluster up` started
    inherits it, and so does everything those processes start)."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("LACT_CLUSTER_ID") == cluster_id:
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    """`lact-audio cluster up --workers 1 --s3` for the session: a Ray head and one worker node with
    token auth, an MLflow server with artifacts on an S3 (moto) server, all on loopback. Yields the
    state and the environment its exports describe (what a user's shell would have). Teardown runs
    `lact-audio cluster down` and checks that no process of the stack is left."""
    import json
    import subprocess
    import sys
    from types import SimpleNamespace

    lact_audio = str(Path(sys.executable).parent / "lact-audio")
    home = tmp_path_factory.mktemp("stack-home")
    # The shell of a user with nothing configured: none of the test process's Ray/MLflow/S3 settings.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_ADDRESS", "RAY_API_SERVER", "RAY_AUTH", "MLFLOW_", "AWS_"))}
    env["LACT_AUDIO_HOME"] = str(home)
    up = subprocess.run([lact_audio, "cluster", "up", "--workers", "1", "--s3"], env=env, capture_output=True,
                        text=True, timeout=600)
    assert up.returncode == 0, up.stderr[-3000:]
    state = json.loads((home / "cluster" / "state.json").read_text())
    exports = dict(line.removeprefix("export ").split("=", 1) for line in up.stdout.splitlines()
                   if line.startswith("export "))
    try:
        yield SimpleNamespace(state=state, env={**env, **exports}, bare_env=env, home=home, cli=lact_audio)
    finally:
        down = subprocess.run([lact_audio, "cluster", "down"], env=env, capture_output=True, text=True, timeout=300)
        left = processes_of_stack(state["cluster_id"])
        assert down.returncode == 0, down.stderr[-3000:]
        assert not left, f"processes of the stack still running after `cluster down`: {left}"
