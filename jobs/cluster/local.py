"""A local multi-node stack on this machine, for development and the integration tests:

    up(workers=N, s3=True)   # Ray head + N Ray worker nodes (token auth, dashboard on loopback),
                             # an MLflow tracking server (SQLite, artifacts on disk or S3), an S3 server
    status()                 # which of its processes are alive, how many Ray nodes
    down()                   # stop exactly the processes up() started

Everything listens on 127.0.0.1. `<work dir>/cluster/state.json` records the addresses, the token
file and the PIDs (with their start times, so a PID reused by another program is never signalled);
logs go to `<work dir>/cluster/logs/`.

Each Ray node is a `ray start --block` process: it owns its raylet, GCS, dashboard and workers and
takes them down when it gets SIGTERM, so stopping the PIDs in state.json stops the whole node
without `ray stop` (which would kill every Ray of the user on the machine). Every process gets
`LACT_CLUSTER_ID` in its environment, inherited by everything it spawns: the tests use it to check
that nothing is left behind.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pipeline import uri as uris
from pipeline.errors import UserError

STATE_FILE = "state.json"
BUCKET = "lact-audio"                 # created on the S3 server; MLflow artifacts go under it
# moto accepts any credentials; these are the conventional test values.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                  "AWS_DEFAULT_REGION": "us-east-1"}
NODE_CPUS = 2                         # logical CPUs per node: small, the machine has 2 cores
OBJECT_STORE_BYTES = 256 * 1024 ** 2  # per node; Ray's default (30% of RAM) is far more than tests use
START_TIMEOUT_S = 180                 # a loaded 2-core machine takes a while to start Ray
NODE_START_ATTEMPTS = 3
STOP_TIMEOUT_S = 30
BIN = Path(sys.executable).parent     # this environment's ray / mlflow / lact-audio


def cluster_dir() -> Path:
    home = uris.work_home()
    if "://" in home and not home.startswith("file://"):
        raise UserError(f"the local cluster keeps its state on local disk; LACT_AUDIO_HOME is {home}")
    return Path(home.removeprefix("file://")).resolve() / "cluster"


def read_state() -> dict | None:
    path = cluster_dir() / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process(entry: dict):
    """The live process an entry of state.json names, or None (gone, or the PID was reused)."""
    import psutil

    try:
        proc = psutil.Process(entry["pid"])
        return proc if abs(proc.create_time() - entry["started"]) < 1.0 and proc.status() != "zombie" else None
    except psutil.Error:
        return None


def _http_ok(url: str, headers: dict | None = None) -> bool:
    import requests

    try:
        return requests.get(url, headers=headers, timeout=5).ok
    except requests.RequestException:
        return False


class _Launcher:
    """Starts the stack's processes, remembers them, and stops them again if up() fails halfway."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root, self.env = root, env
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.root / "logs" / f"{name}.log", "ab")
        # Own session: a Ctrl-C in the shell that ran `cluster up` does not reach the stack.
        proc = subprocess.Popen(argv, env={**self.env, **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.root)
        self.procs[name] = proc
        return proc

    def wait_until(self, name: str, ready, what: str, exit_ok: bool = False) -> bool:
        """True once ready(); False if the process exited and exit_ok; else a UserError."""
        deadline = time.monotonic() + START_TIMEOUT_S
        log = self.root / "logs" / f"{name}.log"
        while not ready():
            if self.procs[name].poll() is not None:
                if exit_ok:
                    return False
                raise UserError(f"{what} exited during start-up; see {log}")
            if time.monotonic() > deadline:
                raise UserError(f"{what} did not come up within {START_TIMEOUT_S} s; see {log}")
            time.sleep(0.5)
        return True

    def start_ray_node(self, name: str, argv: list[str], env: dict[str, str], ready, what: str) -> None:
        """`ray start --block` exits when its raylet misses Ray's fixed 30 s registration window (a
        loaded machine): start it again, as pipeline.ray_connection does for an in-process Ray."""
        for attempt in range(1, NODE_START_ATTEMPTS + 1):
            self.start(name, argv, env)
            if self.wait_until(name, ready, what, exit_ok=attempt < NODE_START_ATTEMPTS):
                return

    def entries(self) -> dict[str, dict]:
        import psutil

        return {name: {"pid": p.pid, "started": psutil.Process(p.pid).create_time()}
                for name, p in self.procs.items()}


def _ray_nodes_alive(dashboard_url: str, token: str) -> int:
    import requests

    try:
        reply = requests.get(f"{dashboard_url}/api/v0/nodes", headers={"Authorization": f"Bearer {token}"},
                             params={"detail": "false", "limit": 100}, timeout=5)
        rows = reply.json()["data"]["result"]["result"] if reply.ok else []
    except (requests.RequestException, ValueError, KeyError):
        return 0
    return sum(1 for row in rows if row.get("state") == "ALIVE")


def write_private(path: Path, text: str) -> str:
    """Write a file only its owner can read, created with that mode: a write-then-chmod leaves it
    readable to others for a moment (and O_CREAT keeps the mode of a file that already exists)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return text


@dataclass
class _Stack:
    """The stack up() is about to start: its token, ids, addresses and environments."""

    root: Path
    workers: int
    token_file: Path
    token: str
    cluster_id: str
    temp_dir: Path               # Ray's own temp dir (short: Ray's socket paths live in it)
    env: dict[str, str]          # every process's environment
    ray_env: dict[str, str]      # what the Ray nodes (and so every job) get on top
    s3_env: dict[str, str]
    gcs_port: int
    dashboard_port: int
    mlflow_port: int
    s3_endpoint: str | None

    @property
    def ray_address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"


def up(workers: int = 1, s3: bool = False) -> dict:
    """Start the stack and write state.json; returns the state."""
    if workers < 0:
        raise UserError(f"--workers must be 0 or more, got {workers}")
    root = cluster_dir()
    old = read_state()
    if old and any(_process(entry) for entry in old["pids"].values()):
        raise UserError(f"a local cluster is already up ({root / STATE_FILE}); run `lact-audio cluster down` first")
    (root / "logs").mkdir(parents=True, exist_ok=True)
    stack = _plan_stack(root, workers, s3)
    launcher = _Launcher(root, stack.env)
    try:
        _start_stack(launcher, stack)
    except BaseException:
        _stop_all(launcher.entries())
        shutil.rmtree(stack.temp_dir, ignore_errors=True)
        raise
    state = {"ray_address": stack.ray_address, "dashboard_url": stack.dashboard_url,
             "mlflow_uri": stack.mlflow_uri, "s3_endpoint": stack.s3_endpoint,
             "token_file": str(stack.token_file), "pids": launcher.entries(), "workers": workers,
             "cluster_id": stack.cluster_id, "ray_temp_dir": str(stack.temp_dir)}
    (root / STATE_FILE).write_text(json.dumps(state, indent=2))
    return state


def _plan_stack(root: Path, workers: int, s3: bool) -> _Stack:
    """A new token, cluster id, free ports and the environments; nothing started yet."""
    token_file = root / "auth_token"
    token = write_private(token_file, secrets.token_hex(32))
    cluster_id = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN", "MLFLOW_TRACKING_URI")}
    env.update(LACT_CLUSTER_ID=cluster_id, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    gcs_port, dashboard_port, mlflow_port = _free_port(), _free_port(), _free_port()
    s3_endpoint = f"http://127.0.0.1:{_free_port()}" if s3 else None
    s3_env = {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint} if s3 else {}
    # Every Ray process (and so every job) finds the MLflow server and the S3 server by itself.
    ray_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file),
               "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}", **s3_env,
               # On SIGTERM a node drains before stopping, 30 s by default; a head node is never reported
               # drained, so `down` would wait that long for nothing (there is no Serve traffic to finish).
               "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "2"}
    return _Stack(root=root, workers=workers, token_file=token_file, token=token, cluster_id=cluster_id,
                  temp_dir=Path(tempfile.gettempdir()) / f"lact-ray-{cluster_id[:8]}", env=env,
                  ray_env=ray_env, s3_env=s3_env, gcs_port=gcs_port, dashboard_port=dashboard_port,
                  mlflow_port=mlflow_port, s3_endpoint=s3_endpoint)


def _start_stack(launcher: _Launcher, stack: _Stack) -> None:
    """S3 server, MLflow server, Ray head, the bucket, the worker nodes; each waited for."""
    root, token, dashboard_url, s3_endpoint = stack.root, stack.token, stack.dashboard_url, stack.s3_endpoint
    if s3_endpoint:
        launcher.start("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                              "-p", s3_endpoint.rsplit(":", 1)[1]])
    # Its own temp dir: `ray start` records "the latest cluster" there, and a plain ray.init() anywhere on
    # the machine would join the one recorded in the default /tmp/ray.
    node = [str(BIN / "ray"), "start", "--block", "--temp-dir", str(stack.temp_dir), "--node-ip-address", "127.0.0.1",
            "--num-cpus", str(NODE_CPUS),
            "--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats"]
    artifacts = f"s3://{BUCKET}/mlartifacts" if s3_endpoint else (root / "mlartifacts").as_uri()
    # MLflow starts first and comes up while Ray does (its database migrations take a while).
    launcher.start("mlflow", [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(stack.mlflow_port),
                              "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                              "--artifacts-destination", artifacts], stack.s3_env)
    launcher.start_ray_node("ray-head", node + [
        "--head", "--port", str(stack.gcs_port), "--dashboard-host", "127.0.0.1",
        "--dashboard-port", str(stack.dashboard_port),
        "--include-dashboard", "true", "--dashboard-agent-listen-port", str(_free_port())], stack.ray_env,
        lambda: _ray_nodes_alive(dashboard_url, token) >= 1, "the Ray head")
    if s3_endpoint:
        launcher.wait_until("s3", lambda: _http_ok(s3_endpoint), "the S3 server")
        import boto3

        boto3.client("s3", endpoint_url=s3_endpoint, region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
                     aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=BUCKET)
    for i in range(1, stack.workers + 1):
        launcher.start_ray_node(f"ray-worker-{i}", node + ["--address", stack.ray_address, "--dashboard-agent-listen-port",
                                                           str(_free_port())], stack.ray_env,
                                lambda i=i: _ray_nodes_alive(dashboard_url, token) >= 1 + i, f"Ray worker node {i}")
    launcher.wait_until("mlflow", lambda: _http_ok(f"{stack.mlflow_uri}/health"), "the MLflow server")


def exports(state: dict) -> list[str]:
    """The shell lines that point lact-audio (and Ray's own CLI) at the stack."""
    lines = [f"export RAY_ADDRESS={state['ray_address']}",
             f"export RAY_API_SERVER_ADDRESS={state['dashboard_url']}",
             "export RAY_AUTH_MODE=token",
             f"export RAY_AUTH_TOKEN_PATH={state['token_file']}",
             f"export MLFLOW_TRACKING_URI={state['mlflow_uri']}"]
    if state["s3_endpoint"]:
        lines += [f"export AWS_ENDPOINT_URL={state['s3_endpoint']}",
                  f"export MLFLOW_S3_ENDPOINT_URL={state['s3_endpoint']}"]
        lines += [f"export {k}={v}" for k, v in S3_CREDENTIALS.items()]
    return lines


def status() -> dict:
    state = read_state()
    if state is None:
        raise UserError(f"no local cluster: {cluster_dir() / STATE_FILE} does not exist (`lact-audio cluster up`)")
    alive = {name: _process(entry) is not None for name, entry in state["pids"].items()}
    token = Path(state["token_file"]).read_text().strip()
    return {**state, "alive": alive, "ray_nodes_alive": _ray_nodes_alive(state["dashboard_url"], token)}


def _stop_all(entries: dict[str, dict]) -> list[int]:
    """Stop the worker nodes, then the head, then the servers (a worker stopping after its head would
    wait for it). Each gets SIGTERM (a Ray node then stops its own processes); what is left of it
    and of its descendants (as they were before the signal) gets SIGKILL."""
    order = [[n for n in entries if n.startswith("ray-worker")], [n for n in entries if n == "ray-head"],
             [n for n in entries if not n.startswith("ray-")]]
    stopped = []
    for names in order:
        stopped += _stop([entries[n] for n in names])
    return stopped


def _stop(entries: list[dict]) -> list[int]:
    import psutil

    procs = [p for p in (_process(e) for e in entries) if p is not None]
    family = []
    for proc in procs:
        try:
            family += proc.children(recursive=True)
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs + family, timeout=STOP_TIMEOUT_S)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=10)
    return [p.pid for p in procs]


def down() -> dict:
    """Stop the processes in state.json and remove it; returns what was stopped."""
    state = read_state()
    if state is None:
        raise UserError(f"no local cluster: {cluster_dir() / STATE_FILE} does not exist")
    stopped = _stop_all(state["pids"])
    shutil.rmtree(state["ray_temp_dir"], ignore_errors=True)   # Ray's session folders (sockets, its own logs)
    (cluster_dir() / STATE_FILE).unlink()
    return {"stopped_pids": stopped, "cluster_id": state["cluster_id"]}
