"""`lact-audio transcribe` on files: streamed features equal the whole-file features, a block-causal
model streams a recording 20x longer than its training utterances and gives its own offline
output, windowed models tile the recording, segments are timed inside the audio and in order,
beam search and its Viterbi alignment, the four output formats, and bad inputs.

The checkpoints are untrained (tests/transcribe_fixtures.py): the check is against each model's
own offline decoding of the whole recording, not a CER against a transcript (a tiny model
trained in test time does not transcribe these signals).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from eval_split import one_torch_thread  # noqa: F401 (autouse)
from jobs.cli import main
from transcribe_fixtures import build_workspace, recording, write_wav


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return build_workspace(str(tmp_path_factory.mktemp("transcribe")))


def offline_tokens(model, wave: np.ndarray, beam: int | None = None) -> str:
    """The model's greedy (or beam) output on the whole recording in one forward, spaces removed."""
    from models.decoding import ctc_greedy_decode, ctc_prefix_beam_search

    feats = model.normalizer()(model.feature_extractor()(wave))
    feats = torch.from_numpy(np.ascontiguousarray(feats))
    with torch.no_grad():
        logits, lengths = model.model(feats[None], torch.tensor([feats.shape[0]]))
    ids = (ctc_prefix_beam_search(logits, lengths, beam_size=beam) if beam
           else ctc_greedy_decode(logits, lengths))[0]
    return "".join(model.text_tokenizer().decode(ids).split())


def check_segments(t, duration: float) -> None:
    assert t.segments, "no segments"
    previous_end = 0.0
    for s in t.segments:
        assert 0.0 <= s.start < s.end <= duration + 1e-6
        assert s.start >= previous_end - 1e-6
        previous_end = s.end
        for w in s.words:
            assert s.start - 1e-6 <= w.start < w.end <= s.end + 1e-6


def test_streamed_features_equal_whole_file_features(tmp_path):
    from jobs.inference.audio_stream import BlockResampler, StreamingLogMel
    from pipeline.audio import resample
    from pipeline.features import AudioFeatureExtractor

    rng = np.random.default_rng(0)
    wave = rng.standard_normal(44100 * 3 + 77).astype(np.float32) * 0.1
    for block in (1000, 4410, 44100):
        r = BlockResampler(44100, 16000)
        parts = [r.push(wave[i:i + block]) for i in range(0, len(wave), block)] + [r.finish()]
        whole = resample(wave, 44100, 16000)
        got = np.concatenate(parts)
        assert got.shape == whole.shape
        np.testing.assert_allclose(got, whole, atol=1e-5)
    extractor = AudioFeatureExtractor()
    signal = whole
    for block in (300, 1600, 16000):
        mel = StreamingLogMel(extractor)
        frames = [mel.push(signal[i:i + block]) for i in range(0, len(signal), block)] + [mel.finish()]
        got = torch.cat(frames).numpy()
        ref = extractor(signal)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-3)


def test_causal_model_streams_a_long_recording_to_its_offline_output(ws, tmp_path):
    from jobs.inference.model import load
    from jobs.inference.transcriber import transcribe

    model = load(ws["causal"])
    assert model.streams
    wave = recording(40.0)      # the training-size utterances are ~1 s
    path = write_wav(tmp_path / "long.wav", wave)
    t = transcribe(model, path)
    assert t.duration == pytest.approx(40.0)
    assert "".join(t.text.split()) == offline_tokens(model, wave)
    check_segments(t, 40.0)
    assert len(t.segments) > 1


def test_windowed_models_tile_the_recording(ws, tmp_path):
    from jobs.inference.model import load
    from jobs.inference.recognizer import WindowConfig, log_probs
    from jobs.inference.audio_stream import FeatureStream
    from jobs.inference.transcriber import DecodeOptions, transcribe

    for name in ("bidirectional", "full"):
        model = load(ws[name])
        assert not model.streams
        short = recording(4.0, seed=1)
        path = write_wav(tmp_path / f"short-{name}.wav", short)
        # shorter than one window: exactly the offline output
        t = transcribe(model, path, DecodeOptions(windows=WindowConfig(5.0, 1.0)))
        assert "".join(t.text.split()) == offline_tokens(model, short)
        # longer: windows with overlap give one log-prob frame per encoder frame, in order
        wave = recording(23.0, seed=2)
        path = write_wav(tmp_path / f"long-{name}.wav", wave)
        frames = sum(x.shape[0] for x in log_probs(model.model, FeatureStream(path, model),
                                                   WindowConfig(5.0, 1.0), 100.0, False))
        assert frames == -(-(23 * 100 + 1) // 4)
        t = transcribe(model, path, DecodeOptions(windows=WindowConfig(5.0, 1.0)))
        check_segments(t, 23.0)


def test_beam_search_matches_offline_beam_and_is_aligned(ws, tmp_path):
    from jobs.inference.model import load
    from jobs.inference.transcriber import DecodeOptions, transcribe

    model = load(ws["causal"])
    wave = recording(3.0, seed=4)
    path = write_wav(tmp_path / "beam.wav", wave)
    t = transcribe(model, path, DecodeOptions(beam_size=4))
    assert "".join(t.text.split()) == offline_tokens(model, wave, beam=4)
    check_segments(t, 3.0)


def test_viterbi_alignment_finds_the_planted_path():
    from jobs.inference.alignment import greedy_spans, viterbi_spans

    # frames: blank, a, a, blank, b, blank, blank, a ; tokens a=1, b=2
    path = [0, 1, 1, 0, 2, 0, 0, 1]
    logp = torch.full((len(path), 3), -5.0)
    logp[torch.arange(len(path)), torch.tensor(path)] = -0.1
    expected = [(1, 1, 3), (2, 4, 5), (1, 7, 8)]
    assert greedy_spans(logp) == expected
    assert viterbi_spans(logp, [1, 2, 1]) == expected
    # a repeated token needs a blank between its two spans
    spans = viterbi_spans(logp, [1, 1])
    assert len(spans) == 2 and spans[0][2] <= spans[1][1] - 1


def test_cli_writes_each_format_and_reports_bad_inputs(ws, tmp_path, capsys):
    import soundfile as sf

    good = write_wav(tmp_path / "good.wav", recording(2.0))
    stereo = tmp_path / "stereo44k.flac"
    sf.write(str(stereo), np.stack([recording(2.0, 5)[::1]] * 2, axis=1), 16000)
    from pipeline.audio import resample
    sf.write(str(stereo), np.stack([resample(recording(2.0, 5), 16000, 44100)] * 2, axis=1), 44100)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file" * 10)
    out = tmp_path / "out"
    for fmt in ("txt", "json", "srt", "vtt"):
        rc = main(["transcribe", "--model", ws["causal"], "--format", fmt, "--output-dir", str(out),
                   "--no-progress", good, str(stereo), str(empty), str(garbage), str(tmp_path / "missing.wav")])
        assert rc == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 3 and "Traceback" not in "\n".join(err)
        assert any("empty.wav" in line and "empty_audio_file" in line for line in err)
        assert any("garbage.wav" in line and "decode_error" in line for line in err)
        assert any("missing.wav" in line and "no such file" in line for line in err)
    doc = json.loads((out / "stereo44k.json").read_text())
    assert doc["duration"] == pytest.approx(2.0) and set(doc["repairs"]) == {"downmixed_2ch", "resampled_44100"}
    assert doc["segments"] and all(0 <= s["start"] < s["end"] <= 2.0 for s in doc["segments"])
    assert (out / "good.txt").read_text().strip() == json.loads((out / "good.json").read_text())["text"]
    srt = (out / "good.srt").read_text()
    assert re.match(r"1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n\S", srt)
    vtt = (out / "good.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n") and re.search(r"\d\d:\d\d:\d\d\.\d{3} --> ", vtt)
    # to stdout without --output-dir; a generator-only flag misuse is one line and exit 2
    assert main(["transcribe", "--model", ws["causal"], "--no-progress", good]) == 0
    assert capsys.readouterr().out.strip() == (out / "good.txt").read_text().strip()
    assert main(["transcribe", "--model", str(tmp_path / "no-model"), good]) == 2
    assert "no-model" in capsys.readouterr().err


@pytest.mark.integration     # a real S3 API server (moto)
def test_cli_reads_s3_files_folders_and_globs(ws, s3_bucket, tmp_path, capsys):
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    for name, seed in (("calls/a.wav", 1), ("calls/sub/b.flac", 2), ("calls/notes.txt", 0)):
        local = tmp_path / name.replace("/", "_")
        if name.endswith(".txt"):
            local.write_text("not audio")
        else:
            import soundfile as sf
            sf.write(str(local), recording(1.5, seed), 16000, subtype="PCM_16")
        fs.put(str(local), f"{s3_bucket}/{name}")
    out = tmp_path / "out"
    rc = main(["transcribe", "--model", ws["causal"], "--format", "json", "--no-progress", "--output-dir", str(out),
               f"{s3_bucket}/calls", f"{s3_bucket}/calls/*.wav"])     # the glob repeats a.wav: once
    assert rc == 0, capsys.readouterr().err
    docs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert [d["source"] for d in docs] == [f"{s3_bucket}/calls/a.wav", f"{s3_bucket}/calls/sub/b.flac"]
    assert all(d["duration"] == pytest.approx(1.5) for d in docs)
