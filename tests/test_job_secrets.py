"""Credentials stay on the cluster: a job submitted from a shell with AWS credentials (and its own
MLflow address) carries neither; what the job table shows (`ray job list`, the job's info, the
dashboard's job API) holds no secret. Submitted with the real `lact-audio submit` to the session's
local multi-node stack (Ray head with its Jobs API and token auth)."""

from __future__ import annotations

import json
import secrets
import subprocess
import time

import pytest

pytestmark = pytest.mark.integration


def test_submitted_job_carries_no_local_credentials(local_stack, tmp_path, monkeypatch):
    import requests

    from pipeline.ray_connection import auth_token, job_client

    secret, session = f"secret-{secrets.token_hex(16)}", f"session-{secrets.token_hex(16)}"
    laptop = {**local_stack.env, "AWS_ACCESS_KEY_ID": "AKIATESTONLY", "AWS_SECRET_ACCESS_KEY": secret,
              "AWS_SESSION_TOKEN": session, "MLFLOW_TRACKING_URI": "http://laptop.invalid:5000"}
    # A command that ends at once on the cluster (its input does not exist); only its record matters.
    submitted = subprocess.run(
        [local_stack.cli, "submit", "--env", "LACT_AUDIO_QUIET=1", "preprocess", "--corpus", "librispeech",
         "--input", str(tmp_path / "none"), "--output", str(tmp_path / "out"), "--quiet"],
        env=laptop, capture_output=True, text=True, timeout=300)
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    job_id = submitted.stdout.split()[1].rstrip(":")

    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):   # read the job table as the stack's own user
        monkeypatch.setenv(name, local_stack.env[name])
    url = local_stack.env["RAY_API_SERVER_ADDRESS"]
    client = job_client(url)
    try:
        info = client.get_job_info(job_id)
        assert info.runtime_env.get("env_vars") == {"LACT_AUDIO_QUIET": "1"}   # only what was asked for
        listed = json.dumps([job.model_dump() for job in client.list_jobs()], default=str)
        headers = {"Authorization": f"Bearer {auth_token()}"}
        raw = "".join(requests.get(f"{url}/api/jobs/{path}", headers=headers, timeout=30).text
                      for path in ("", job_id))
        for text in (json.dumps(info.model_dump(), default=str), listed, raw):
            assert job_id in text
            for value in (secret, session, "AKIATESTONLY", "laptop.invalid"):
                assert value not in text
    finally:
        deadline = time.monotonic() + 120
        while not client.get_job_status(job_id).is_terminal() and time.monotonic() < deadline:
            time.sleep(1)
        if not client.get_job_status(job_id).is_terminal():
            client.stop_job(job_id)
