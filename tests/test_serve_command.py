"""The blocking `lact-audio serve --model models:/NAME@champion` command itself, as a user runs it: the
console script in a subprocess (its own local Ray, as on a laptop) on a free loopback port, against a
model registered in a real MLflow store. It answers GET /healthz and a POSTed WAV (requests), and on
SIGTERM (docker stop, systemd, the end of a pod) it stops as on Ctrl-C: deletes the application, shuts
its Ray down and exits 130 ("interrupted", the CLI's code for a KeyboardInterrupt), leaving no process
behind and the port closed. (Before jobs/commands/serve.py handled SIGTERM itself, Ray's handler left the command
aborted, exit 134, with Ray's dashboard and runtime-env agents running. Ctrl-C takes the same path.)

tests/test_serve.py covers the deployment itself (uploads, batching, alias moves) through the Python API.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from eval_split import one_torch_thread  # noqa: F401 (autouse)
from transcribe_fixtures import recording, write_asr_checkpoint, write_wav

pytestmark = pytest.mark.integration

NAME = "asr-serve-command-test"
MARKER = "LACT_SERVE_TEST_ID"      # in the command's environment, so inherited by every process it starts
START_TIMEOUT = 150                # a local Ray + Serve + one replica, on a loaded 2-core machine
STOP_TIMEOUT = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_with(marker: str) -> list[str]:
    """Live processes whose environment carries MARKER=marker (the command and all it started)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(MARKER) == marker:
                found.append(f"{proc.pid} {proc.info['name']} {' '.join(proc.cmdline())[:120]}")
        except (psutil.Error, OSError):
            continue
    return found


@pytest.fixture
def registered(tmp_path, monkeypatch) -> dict:
    """A tiny causal ASR model registered as NAME version 1 with alias champion in a SQLite MLflow
    store under tmp_path (the untrained checkpoint of tests/transcribe_fixtures.py)."""
    import mlflow

    from eval_split import write_split
    from jobs.runs import tracking
    from jobs.runs.model_io import load_checkpoint_dir

    split = write_split(str(tmp_path))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LACT_AUDIO_HOME", str(tmp_path / "home"))
    mlflow.set_tracking_uri(uri)
    mlflow.create_experiment("serve-command-test", artifact_location=f"file://{tmp_path / 'artifacts'}")
    mlflow.set_experiment("serve-command-test")
    model, meta = load_checkpoint_dir(write_asr_checkpoint(str(tmp_path / "v1"), split, "lact", True, seed=3))
    with mlflow.start_run():
        model_uri = tracking.log_and_register(model, meta, NAME, "champion")
    return {"model_uri": model_uri, "tracking_uri": uri, "home": str(tmp_path / "home")}


def test_serve_command_answers_then_stops_cleanly_on_sigterm(registered, tmp_path):
    from jobs.inference.model import load
    from jobs.inference.transcriber import transcribe

    port, marker = _free_port(), uuid.uuid4().hex
    wav = write_wav(tmp_path / "talk.wav", recording(3.0, seed=11))
    expected = transcribe(load(registered["model_uri"]), wav).text
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.update({MARKER: marker, "MLFLOW_TRACKING_URI": registered["tracking_uri"],
                "LACT_AUDIO_HOME": registered["home"], "RAY_AUTH_MODE": "disabled"})
    command = [str(Path(sys.executable).parent / "lact-audio"), "serve", "--model", registered["model_uri"],
               "--port", str(port), "--poll", "3600"]
    url = f"http://127.0.0.1:{port}"
    stdout, stderr = open(tmp_path / "stdout", "w+"), open(tmp_path / "stderr", "w+")
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, cwd=tmp_path)

    def output() -> str:
        return (tmp_path / "stdout").read_text()[-2000:] + "\n--- stderr ---\n" + (tmp_path / "stderr").read_text()[-4000:]

    try:
        health = None
        while health is None:
            assert proc.poll() is None, f"`lact-audio serve` exited {proc.returncode} before serving:\n{output()}"
            assert time.perf_counter() - started < START_TIMEOUT, f"not serving after {START_TIMEOUT} s:\n{output()}"
            try:
                r = requests.get(f"{url}/healthz", timeout=5)
                health = r.json() if r.status_code == 200 else None
            except requests.RequestException:
                pass
            if health is None:
                time.sleep(0.5)
        ready = time.perf_counter() - started
        assert health["status"] == "ok" and health["version"] == "1" and health["model"] == registered["model_uri"]
        # the proxy may answer a moment before serve.run returns and the command says where it serves
        banner = f"serving {registered['model_uri']} at {url}/v1/transcribe (health: {url}/healthz)"
        deadline = time.perf_counter() + 30
        while banner not in (tmp_path / "stdout").read_text():
            assert time.perf_counter() < deadline, f"no {banner!r} on stdout:\n{output()}"
            time.sleep(0.2)

        answer = requests.post(f"{url}/v1/transcribe", data=open(wav, "rb").read(), timeout=60)
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        assert doc["model_version"] == "1" and doc["text"] == expected
        assert doc["duration"] == pytest.approx(3.0)
        ends = [0.0] + [s["end"] for s in doc["segments"]]
        assert all(ends[i] <= s["start"] < s["end"] <= 3.0 for i, s in enumerate(doc["segments"]))
        assert _processes_with(marker), "the marker did not reach the command's processes"

        proc.send_signal(signal.SIGTERM)
        stopping = time.perf_counter()
        try:
            code = proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`lact-audio serve` still running {STOP_TIMEOUT} s after SIGTERM:\n{output()}")
        stopped = time.perf_counter() - stopping
        assert code == 130, f"exit code {code} after SIGTERM:\n{output()}"
        assert "lact-audio serve: interrupted" in (tmp_path / "stderr").read_text()
        assert "Traceback" not in (tmp_path / "stderr").read_text(), output()
        deadline = time.perf_counter() + 30      # Ray's workers notice their raylet is gone
        while (left := _processes_with(marker)) and time.perf_counter() < deadline:
            time.sleep(0.5)
        assert not left, f"processes of `lact-audio serve` left after it exited: {left}"
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/healthz", timeout=5)
        print(f"serving after {ready:.1f} s, stopped {stopped:.1f} s after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid_line in _processes_with(marker):     # never leave a Ray of this test running
            try:
                os.kill(int(pid_line.split()[0]), signal.SIGKILL)
            except OSError:
                pass
        stdout.close()
        stderr.close()
