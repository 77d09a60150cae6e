"""Credentials stay on the cluster: a job submitted from a shell with AWS credentials (and its own
MLflow address) carries neither; what the job table shows (`ray job list`, the job's info, the
dashboard's job API) holds no secret. A real Ray head with its Jobs API, started for this module
(its own dashboard agent port: another Ray on the machine may hold the default one)."""

from __future__ import annotations

import argparse
import json
import secrets
import time

import socket

import pytest

pytestmark = [
    pytest.mark.integration,
    # Not yet seen passing (2026-12-04, a shared machine at load 20-80): the head started, but every
    # submission to it answered HTTP 504 for 300 s (or the raylet missed its registration window).
    # Unskip once it passes on a quiet machine; the refusal and runtime_env checks in
    # tests/test_ray_connection.py do pass.
    pytest.mark.skip(reason="not yet seen passing: submissions to the private Ray head answered 504"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jobs_api():
    """A Ray head (not joined by this process) whose Jobs API takes submissions; its URL."""
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as mp:
        # A loaded 2-core machine can take over the default 60 s to bring the dashboard up.
        mp.setattr(ray_constants, "RAY_DASHBOARD_STARTUP_TIMEOUT_S", 300)
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": free_port(),
            "dashboard_agent_listen_port": free_port(), "node_ip_address": "127.0.0.1"})
    try:
        yield f"http://{cluster.head_node.webui_url}"
    finally:
        cluster.shutdown()


def test_submitted_job_carries_no_local_credentials(jobs_api, monkeypatch, tmp_path, capsys):
    import requests
    from ray.job_submission import JobSubmissionClient

    from jobs.submit import run
    from pipeline.errors import UserError

    secret, session = f"secret-{secrets.token_hex(16)}", f"session-{secrets.token_hex(16)}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTONLY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", session)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://laptop.invalid:5000")
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    url = jobs_api
    # A command that ends at once on the cluster (its input does not exist); only its record matters.
    args = argparse.Namespace(kind="preprocess", address=url, wait=False, env=["LACT_AUDIO_QUIET=1"],
                              args=["--corpus", "librispeech", "--input", str(tmp_path / "none"),
                                    "--output", str(tmp_path / "out"), "--quiet"])
    deadline = time.monotonic() + 300
    while True:   # a Ray started a moment ago may not have its job agent up, or answer in time (500, 504)
        try:
            assert run(args) == 0
            break
        except UserError as exc:
            if not ("No available agent" in str(exc) or "504" in str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(2)
    job_id = capsys.readouterr().out.split()[1].rstrip(":")
    client = JobSubmissionClient(url)
    try:
        info = client.get_job_info(job_id)
        assert info.runtime_env.get("env_vars") == {"LACT_AUDIO_QUIET": "1"}   # only what was asked for
        listed = json.dumps([job.dict() for job in client.list_jobs()], default=str)
        raw = "".join(requests.get(f"{url}/api/jobs/{path}", timeout=30).text for path in ("", job_id))
        for text in (json.dumps(info.dict(), default=str), listed, raw):
            assert job_id in text
            for value in (secret, session, "AKIATESTONLY", "laptop.invalid"):
                assert value not in text
    finally:
        deadline = time.monotonic() + 120
        while not client.get_job_status(job_id).is_terminal() and time.monotonic() < deadline:
            time.sleep(1)
        if not client.get_job_status(job_id).is_terminal():
            client.stop_job(job_id)
