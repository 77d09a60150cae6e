"""`lact-audio generate` with tiny untrained generators (LaCT and full attention): the WAV's length
and rate come from the run's audio tokenizer, the same seed gives the same audio, --stream writes
the same samples as the one-shot path, a prompt is continued, and misuse is one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from eval_split import one_torch_thread, write_checkpoint, write_split  # noqa: F401 (autouse)
from jobs.cli import main
from transcribe_fixtures import recording, write_asr_checkpoint, write_wav


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate")
    split = write_split(str(root))
    return {"root": root, "split": split,
            "lact": write_checkpoint(str(root / "gen-lact"), "generation", "lact", 30),
            "full": write_checkpoint(str(root / "gen-full"), "generation", "baseline", 30),
            "asr": write_asr_checkpoint(str(root / "asr"), split, "lact", True)}


def test_generate_writes_seeded_audio_and_streams_the_same(ws, tmp_path, capsys):
    rate = json.loads((ws["root"] / "features" / "test-clean" / "manifest.json").read_text())["audio_tokenizer"]["rate_hz"]
    for arch in ("lact", "full"):
        base = ["generate", "--model", ws[arch], "--data", ws["split"], "--seconds", "0.02", "--top-k", "16"]
        a, b, s = (tmp_path / f"{arch}-{n}.wav" for n in "abs")
        assert main(base + ["--out", str(a), "--seed", "3"]) == 0
        assert main(base + ["--out", str(b), "--seed", "3"]) == 0
        assert main(base + ["--out", str(s), "--seed", "3", "--stream"]) == 0
        wa, ra = sf.read(a)
        assert ra == rate and len(wa) == round(0.02 * rate)
        np.testing.assert_array_equal(wa, sf.read(b)[0])
        np.testing.assert_array_equal(wa, sf.read(s)[0])
    assert f"wrote {a}" in capsys.readouterr().out


def test_generate_continues_a_prompt(ws, tmp_path):
    prompt = write_wav(tmp_path / "prompt.wav", recording(0.2))
    out = tmp_path / "cont.wav"
    assert main(["generate", "--model", ws["lact"], "--data", ws["split"], "--prompt-audio", prompt,
                 "--seconds", "0.02", "--include-prompt", "--out", str(out)]) == 0
    assert sf.info(str(out)).duration == pytest.approx(0.22, abs=0.01)


def test_generate_misuse_is_one_line(ws, tmp_path, capsys):
    assert main(["generate", "--model", ws["asr"], "--seconds", "0.1", "--out", str(tmp_path / "x.wav")]) == 2
    assert "is for the asr task" in capsys.readouterr().err
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    assert main(["generate", "--model", ws["lact"], "--data", ws["split"], "--prompt-audio", str(bad),
                 "--seconds", "0.1", "--out", str(tmp_path / "y.wav")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "decode_error" in err[0]
