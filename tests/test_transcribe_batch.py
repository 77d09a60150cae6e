"""Batch transcription on Ray Data (real local Ray cluster): a run killed mid-way (SIGKILL to the
driver's process group) and run again finishes the corpus without transcribing a finished file
again and without losing one; a bad file is a row with its error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.cli import main
from transcribe_fixtures import build_workspace, recording, write_wav

FILES = 24


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    ws = build_workspace(str(root / "ws"))
    audio = root / "corpus"
    for i in range(FILES - 1):
        folder = audio / f"spk{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        write_wav(folder / f"utt{i:03d}.wav", recording(4.0, seed=i))
    (audio / "spk0" / "broken.wav").write_bytes(b"RIFF\x00\x00 not audio")
    return ws, audio


def _cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "lact-audio"), "transcribe", *args]


def _parts(output: Path) -> dict[str, bytes]:
    folder = Path(str(output) + ".parts")
    return {p.name: p.read_bytes() for p in folder.glob("part-*.parquet")} if folder.is_dir() else {}


def _ids(parts: dict[str, bytes]) -> list[str]:
    import io

    return [i for data in parts.values() for i in pq.read_table(io.BytesIO(data)).column("id").to_pylist()]


@pytest.mark.integration
def test_killed_batch_run_resumes_without_redoing_or_losing_files(corpus, ray_cluster, tmp_path, monkeypatch,
                                                                  capsys):
    ws, audio = corpus
    address = ray_cluster.get_runtime_context().gcs_address
    output = tmp_path / "out" / "transcripts.parquet"
    env = {**os.environ, "LACT_AUDIO_HOME": str(tmp_path / "home")}
    common = ["--model", ws["causal"], "--input", str(audio), "--output", str(output), "--address", address]

    first = subprocess.Popen(_cli(*common, "--batch-size", "1"), env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while len(_parts(output)) < 3 and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL, first.stderr.read().decode()[-2000:]
    before = _parts(output)
    done_before = set(_ids(before))
    assert not output.exists(), "the first run finished before it was killed"
    assert 3 <= len(done_before) < FILES

    # the rerun in this process, on the same cluster (Ray is already initialised here)
    monkeypatch.setenv("LACT_AUDIO_HOME", str(tmp_path / "home"))
    assert main(["transcribe", *common, "--batch-size", "2", "--num-actors", "2"]) == 1   # 1: the broken file
    err = capsys.readouterr().err
    assert f"{FILES} files, {len(done_before)} already done, {FILES - len(done_before)} to transcribe" in err
    after = _parts(output)
    assert all(after[name] == data for name, data in before.items())   # finished parts untouched
    ids = _ids(after)
    assert len(ids) == len(set(ids)) == FILES                          # none twice, none lost
    table = pq.read_table(output).to_pylist()
    assert sorted(r["id"] for r in table) == sorted(ids)
    broken = [r for r in table if r["error"]]
    assert [r["id"] for r in broken] == ["spk0/broken"] and "decode_error" in broken[0]["error"]
    good = [r for r in table if not r["error"]]
    assert all(r["duration"] == pytest.approx(4.0) and r["segments"] for r in good)
    assert all(0 <= s["start"] < s["end"] <= 4.0 for r in good for s in r["segments"])
    # a third run has nothing left to do
    main(["transcribe", *common])
    assert f"{FILES} files, {FILES} already done, 0 to transcribe" in capsys.readouterr().err
    assert pq.read_table(output).num_rows == FILES
