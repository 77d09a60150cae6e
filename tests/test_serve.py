"""`lact-audio serve` on a real Ray Serve, answered by a real HTTP client (requests): health, raw and
multipart uploads with segments, a bad upload (400 with its reason), concurrent requests batched
together, and the `champion` alias moved in a real MLflow registry while requests are in flight
(every request answered, the new version picked up and reported by /healthz)."""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from eval_split import one_torch_thread  # noqa: F401 (autouse)
from transcribe_fixtures import recording, write_asr_checkpoint, write_wav

NAME = "asr-serve-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Two versions of a tiny causal ASR model in a real MLflow store; champion -> version 1."""
    import mlflow

    from eval_split import write_split
    from jobs.runs import tracking
    from jobs.runs.model_io import load_checkpoint_dir

    root = tmp_path_factory.mktemp("serve")
    split = write_split(str(root))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "LACT_AUDIO_HOME")}
    os.environ.update(MLFLOW_TRACKING_URI=uri, LACT_AUDIO_HOME=str(root / "home"))
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name("serve-test") is None:
        mlflow.create_experiment("serve-test", artifact_location=f"file://{root / 'artifacts'}")
    mlflow.set_experiment("serve-test")
    for seed in (0, 1):
        model, meta = load_checkpoint_dir(write_asr_checkpoint(str(root / f"v{seed + 1}"), split, "lact", True, seed))
        with mlflow.start_run():
            tracking.log_and_register(model, meta, NAME, "champion" if seed == 0 else None)
    yield {"root": root, "tracking_uri": uri, "split": split}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def service(registry, ray_cluster):
    from ray import serve

    from jobs.inference.serving import ServeConfig, start

    port = _free_port()
    config = ServeConfig(model=f"models:/{NAME}@champion", max_batch_size=4, batch_wait_s=0.05, poll_seconds=0.5,
                         env={"MLFLOW_TRACKING_URI": registry["tracking_uri"],
                              "LACT_AUDIO_HOME": str(registry["root"] / "home")})
    url = start(config, port=port)
    yield url
    serve.shutdown()


def _expected_text(version: int, wav: str) -> str:
    from jobs.inference.model import load
    from jobs.inference.transcriber import transcribe

    return transcribe(load(f"models:/{NAME}/{version}"), wav).text


@pytest.mark.integration
def test_health_uploads_and_bad_upload(service, registry, tmp_path):
    health = requests.get(f"{service}/healthz", timeout=30).json()
    assert health["status"] == "ok" and health["version"] == "1" and health["model"].endswith("@champion")
    wav = write_wav(tmp_path / "a.wav", recording(3.0, seed=7))
    data = open(wav, "rb").read()
    raw = requests.post(f"{service}/v1/transcribe", data=data, timeout=60)
    assert raw.status_code == 200, raw.text
    doc = raw.json()
    assert doc["model_version"] == "1" and doc["duration"] == pytest.approx(3.0)
    assert doc["text"] == _expected_text(1, wav)
    ends = [0.0] + [s["end"] for s in doc["segments"]]
    assert doc["segments"] and all(ends[i] <= s["start"] < s["end"] <= 3.0 for i, s in enumerate(doc["segments"]))
    form = requests.post(f"{service}/v1/transcribe", files={"file": ("a.wav", data, "audio/wav")}, timeout=60)
    assert form.status_code == 200 and form.json()["text"] == doc["text"]
    bad = requests.post(f"{service}/v1/transcribe", data=b"RIFF....this is not audio", timeout=60)
    assert bad.status_code == 400 and "decode_error" in bad.json()["error"]
    empty = requests.post(f"{service}/v1/transcribe", data=b"", timeout=60)
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    assert requests.get(f"{service}/nowhere", timeout=30).status_code == 404


@pytest.mark.integration
def test_alias_move_is_picked_up_while_requests_are_in_flight(service, registry, tmp_path):
    from mlflow.tracking import MlflowClient

    wav = write_wav(tmp_path / "b.wav", recording(2.0, seed=8))
    data = open(wav, "rb").read()
    expected = {"1": _expected_text(1, wav), "2": _expected_text(2, wav)}
    assert expected["1"] != expected["2"]
    answers: list[tuple[int, dict]] = []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            r = requests.post(f"{service}/v1/transcribe", data=data, timeout=120)
            answers.append((r.status_code, r.json()))

    with ThreadPoolExecutor(4) as pool:
        workers = [pool.submit(client) for _ in range(4)]
        time.sleep(1.0)
        MlflowClient(registry["tracking_uri"]).set_registered_model_alias(NAME, "champion", "2")
        deadline = time.time() + 120
        while requests.get(f"{service}/healthz", timeout=30).json()["version"] != "2":
            assert time.time() < deadline, "the alias move was not picked up"
            time.sleep(0.2)
        seen_new = len(answers)
        while len(answers) < seen_new + 4:
            time.sleep(0.1)
        stop.set()
        for w in workers:
            w.result()
    assert all(code == 200 for code, _ in answers), [a for a in answers if a[0] != 200][:3]
    versions = [doc["model_version"] for _, doc in answers]
    assert "1" in versions and versions[-1] == "2"
    assert all(doc["text"] == expected[doc["model_version"]] for _, doc in answers)
    assert versions[-4:] == ["2"] * 4          # once moved, the new version serves
    # four clients at once: serve.batch grouped requests
    assert requests.get(f"{service}/healthz", timeout=30).json()["largest_batch"] >= 2
