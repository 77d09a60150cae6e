"""Ray jobs on a cluster through Ray's Jobs API (`lact-audio submit`, `lact-audio jobs`): submit a
command line, follow its log, wait for its end. Every request's refusal (a wrong token, an
unknown job, an unreachable cluster) becomes a one-line UserError."""

from __future__ import annotations

import asyncio
import secrets
import time

from pipeline.errors import UserError
from pipeline.ray_connection import job_runtime_env


def api_call(what: str, call, *args):
    """One Jobs API request; a refusal or an unknown job becomes a one-line UserError."""
    from ray.exceptions import AuthenticationError

    try:
        return call(*args)
    except AuthenticationError as exc:
        raise UserError(f"{what}: the cluster refused the token") from exc
    except (RuntimeError, ConnectionError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{what}: {first}") from exc


def follow_logs(client, job_id: str) -> None:
    """Print the job's log as it grows, until the stream ends."""
    async def tail():
        async for lines in client.tail_job_logs(job_id):
            print(lines, end="", flush=True)

    api_call(f"following the logs of {job_id}", asyncio.run, tail())


def submit(client, kind: str, command: str, env_vars: dict) -> str:
    """Submit `command` (a lact-audio command line) with the project folder as its working_dir;
    returns the job's id, lact-<kind>-<time>-<random>."""
    job_id = f"lact-{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    api_call("submitting the job", lambda: client.submit_job(
        entrypoint=command, submission_id=job_id,
        runtime_env=job_runtime_env(working_dir=True, env_vars=env_vars),
        metadata={"lact_audio_kind": kind}))
    return job_id


def follow_to_end(client, job_id: str):
    """Follow the job's log until it ends; its final JobInfo."""
    follow_logs(client, job_id)
    info = api_call(f"job {job_id}", client.get_job_info, job_id)
    while not info.status.is_terminal():  # the log stream can close a moment before the status flips
        time.sleep(1)
        info = api_call(f"job {job_id}", client.get_job_info, job_id)
    return info
