"""Reaching Ray: the one place every command (and the tests) starts or joins a Ray cluster.

    connect(address)            # join --address / $RAY_ADDRESS, else start a local Ray in-process
    with ray_session(address):  # the same, shut down afterwards if it was started here
    job_client(address)         # Ray's JobSubmissionClient for `submit` / `jobs`, token attached

Token auth (Ray 2.60 turns it on by default): a cluster started with `RAY_AUTH_MODE=token` accepts
requests carrying its token, taken from `RAY_AUTH_TOKEN` (the token itself) or `RAY_AUTH_TOKEN_PATH`
(a file), else Ray's default file `~/.ray/auth_token`.

What a job on a cluster started elsewhere needs travels with it (`job_runtime_env`): the project's
packages (or, for a submitted job, the whole project as working_dir, configs included). Settings and
credentials come from the cluster side (the pods' Secrets and ConfigMap, the nodes' environment):
a job's runtime_env is stored in the job table, where the dashboard and `ray job list` show it to
anyone who can list jobs, and a laptop's MLFLOW_TRACKING_URI must not override the cluster's. Only
variables the user names (`submit --env NAME[=VALUE]`) travel, and never a credential.

Retries: joining an address is left to Ray's own GCS client, which retries for
`RAY_gcs_rpc_server_reconnect_timeout_s`; a failure after that is the user's (wrong address, wrong
token) and is reported in one line. Starting a local Ray is retried by the kind of failure: Ray
raises a bare `Exception` when the raylet misses its fixed 30 s registration window on a loaded
machine and ConnectionError/TimeoutError while its GCS is slow to answer, whereas bad arguments
and authentication problems have their own exception types and are not retried.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "models", "kernels", "jobs")
# Names and values that are credentials: never put in a runtime_env (it is readable by whoever can
# list jobs); the cluster gives them to its pods.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|ACCESS_KEY|KEY_ID|PRIVATE_KEY|API_KEY", re.I)
PASSWORD_IN_URI = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
# Left out of an uploaded working_dir (Ray also skips what .gitignore names).
WORKING_DIR_EXCLUDES = [".git", ".venv", "runs", "mlruns", "bench/results", "**/__pycache__"]
LOCAL_START_ATTEMPTS = 3
DEFAULT_TOKEN_FILE = Path.home() / ".ray" / "auth_token"


def local_cpus() -> int:
    """Logical CPUs of a local Ray: more than the cores, because two 1-CPU Train workers on a
    2-CPU Ray leave Ray Data none and the run hangs (STACK_NOTES)."""
    return max(4, 2 * (os.cpu_count() or 1))


def auth_token() -> str | None:
    """The token this shell would present, by Ray's own lookup order; None if there is none."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = Path(os.environ["RAY_AUTH_TOKEN_PATH"]) if os.environ.get("RAY_AUTH_TOKEN_PATH") else None
    if path is None and os.environ.get("RAY_AUTH_MODE") == "token":
        path = DEFAULT_TOKEN_FILE
    if path is None:
        return None
    try:
        return path.read_text().strip() or None
    except OSError as exc:
        raise UserError(f"cannot read the Ray token file {path}: {exc.strerror}") from exc


def sendable_env(items: list[str] | None) -> dict[str, str]:
    """`--env NAME` (this shell's value) or `--env NAME=VALUE` as a job's env_vars; a credential is
    refused in one line (UserError), and so is a NAME this shell does not have."""
    env = {}
    for item in items or []:
        name, has_value, value = item.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UserError(f"--env {item!r}: expected NAME or NAME=VALUE")
        if not has_value:
            if name not in os.environ:
                raise UserError(f"--env {name}: this shell has no {name} to send")
            value = os.environ[name]
        if SECRET_NAME.search(name) or PASSWORD_IN_URI.search(value):
            raise UserError(f"--env {name}: a credential is not sent with a job (its runtime_env is shown "
                            "to anyone who can list jobs); give it to the cluster (a pod Secret, the nodes' "
                            "environment)")
        env[name] = value
    return env


def job_runtime_env(working_dir: bool = False, env_vars: dict[str, str] | None = None) -> dict:
    """The runtime_env of work sent to a cluster started elsewhere: the project's code, as packages
    (py_modules) or, for a submitted job, the project folder itself; env_vars only those given
    (sendable_env), so the job otherwise sees the cluster's own settings."""
    env: dict = {"env_vars": dict(env_vars)} if env_vars else {}
    if working_dir:
        env.update(working_dir=str(PROJECT_ROOT), excludes=WORKING_DIR_EXCLUDES)
    else:
        env["py_modules"] = [str(PROJECT_ROOT / name) for name in PACKAGES]
    return env


def _inside_submitted_job() -> bool:
    """A job submitted through the Jobs API already carries its runtime_env (working_dir, env);
    Ray refuses a second one naming the same keys."""
    from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR

    return RAY_JOB_CONFIG_JSON_ENV_VAR in os.environ


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _start_local(**init_kwargs) -> None:
    import ray

    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            ray.init(**init_kwargs)
            return
        except Exception as exc:
            transient = type(exc) in (Exception, ConnectionError, TimeoutError)
            if not transient or attempt == LOCAL_START_ATTEMPTS:
                raise
            ray.shutdown()
            time.sleep(2 * attempt)


def connect(address: str | None = None, **local_kwargs) -> bool:
    """Make this process a Ray driver; returns True when it started (and so owns) the Ray.

    Already initialised: nothing to do. `address` or $RAY_ADDRESS: join that cluster (a failure
    is a UserError). Else start a local Ray with `local_kwargs` for ray.init (num_cpus defaults to
    local_cpus())."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        local_kwargs.setdefault("num_cpus", local_cpus())
        # "local": a new Ray, never the latest `ray start` cluster that ray.init() would otherwise join.
        _start_local(address="local", **local_kwargs)
        return True
    if auth_token() and not os.environ.get("RAY_AUTH_MODE"):
        os.environ["RAY_AUTH_MODE"] = "token"  # a token given means a token-authenticated cluster
    try:
        ray.init(address=address, runtime_env=None if _inside_submitted_job() else job_runtime_env())
    except Exception as exc:  # ConnectionError, AuthenticationError, a bad address
        raise UserError(f"cannot reach Ray at {address}: {_one_line(exc)} (a token-authenticated cluster "
                        "needs RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)") from exc
    return False


@contextmanager
def ray_session(address: str | None = None, **local_kwargs):
    """connect() for the length of a block; only a Ray started here is shut down here."""
    import ray

    started = connect(address, **local_kwargs)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def submission_address(address: str | None = None) -> str:
    """The Jobs API (dashboard) URL: --address, else $RAY_API_SERVER_ADDRESS, else an http(s)
    $RAY_ADDRESS; the same order as Ray's own `ray job` CLI."""
    for candidate in (address, os.environ.get("RAY_API_SERVER_ADDRESS"), os.environ.get("RAY_ADDRESS")):
        if candidate and (candidate is address or "://" in candidate):
            return candidate if "://" in candidate else f"http://{candidate}"
    raise UserError("no Ray Jobs address: pass --address http://HOST:8265 or export RAY_API_SERVER_ADDRESS "
                    "(`lact-audio cluster up` prints it)")


def job_client(address: str | None = None):
    """Ray's JobSubmissionClient for the cluster at `address`, with the token in its headers."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    url = submission_address(address)
    token = auth_token()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    # Ray's client lets $RAY_API_SERVER_ADDRESS / $RAY_ADDRESS override the address it is given;
    # here an explicit --address wins, so they are hidden while it is built.
    saved = {name: os.environ.pop(name) for name in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS") if name in os.environ}
    try:
        return JobSubmissionClient(url, headers=headers)
    except AuthenticationError as exc:
        problem = "its token was refused" if token else "it needs a token (set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)"
        raise UserError(f"Ray at {url} refused the connection: {problem}") from exc
    except Exception as exc:  # ConnectionError, an address that is not a Ray dashboard
        raise UserError(f"cannot reach the Ray Jobs API at {url}: {_one_line(exc)}") from exc
    finally:
        os.environ.update(saved)
