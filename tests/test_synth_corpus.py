"""Synthetic corpora end to end with espeak-ng (kept tiny): layouts, audio formats, determinism,
re-runs, S3 output and the CLI's one-line errors."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

from jobs.cli import main
from pipeline.errors import UserError
from pipeline.readers import read_corpus
from pipeline.records import Utterance
from pipeline.synthetic import corpus as corpus_module
from pipeline.synthetic import synthesize_corpus
from pipeline.synthetic.commonvoice import CV_COLUMNS


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_librispeech(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "LibriSpeech"
    summary = synthesize_corpus("librispeech", str(root), utterances_per_split=3, seed=5)
    return root, summary


def test_librispeech_layout_audio_and_reader(tiny_librispeech):
    root, summary = tiny_librispeech
    assert summary["utterances"] == 9 and not summary["skipped"]
    assert {split: e["utterances"] for split, e in summary["splits"].items()} == {
        "train-clean-100": 3, "dev-clean": 3, "test-clean": 3}
    records = list(read_corpus("librispeech", str(root)))
    assert all(isinstance(r, Utterance) for r in records) and len(records) == 9
    seconds = 0.0
    for utt in records:
        info = sf.info(utt.audio_uri)
        assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
        assert 0.5 < info.duration < 8.0
        seconds += info.duration
        assert utt.text == utt.text.upper() and 3 <= len(utt.text.split()) <= 12
        audio, _ = sf.read(utt.audio_uri)
        assert 0.02 < abs(audio).max() <= 1.0                       # speech, not silence
    assert abs(seconds / 3600 - summary["hours"]) < 0.002
    by_split = {split: {r.speaker for r in records if r.split == split} for split in summary["splits"]}
    assert not by_split["train-clean-100"] & by_split["test-clean"]
    assert not by_split["train-clean-100"] & by_split["dev-clean"]
    speakers_txt = (root / "SPEAKERS.TXT").read_text()
    for speaker in by_split["test-clean"]:
        assert f"{speaker} " in speakers_txt and summary["speakers"][speaker]["split"] == "test-clean"


def test_same_seed_same_bytes_rerun_and_refusals(tiny_librispeech, tmp_path):
    root, summary = tiny_librispeech
    again = tmp_path / "again"
    synthesize_corpus("librispeech", str(again), utterances_per_split=3, seed=5)
    assert tree_bytes(again) == tree_bytes(root)
    rerun = synthesize_corpus("librispeech", str(again), utterances_per_split=3, seed=5)
    assert rerun["skipped"] and rerun["utterances"] == 9
    with pytest.raises(UserError, match="other settings .*utterances_per_split 3 -> 2"):
        synthesize_corpus("librispeech", str(again), utterances_per_split=2, seed=5)
    other = synthesize_corpus("librispeech", str(again), utterances_per_split=1, seed=6, overwrite=True)
    assert other["utterances"] == 3 and len(list(again.rglob("*.flac"))) == 3
    transcripts = sorted(p.read_text() for p in again.rglob("*.trans.txt"))
    assert transcripts != sorted(p.read_text() for p in root.rglob("*.trans.txt"))


def test_interrupted_run_is_redone_and_foreign_directories_are_kept(tmp_path):
    out = tmp_path / "interrupted"
    synthesize_corpus("librispeech", str(out), utterances_per_split=1, seed=1)
    finished = tree_bytes(out)
    marker = out / "SYNTHETIC.json"
    settings = json.loads(marker.read_text())["settings"]
    marker.write_text(json.dumps({"settings": settings, "complete": False}))   # as if killed mid-way
    next(out.rglob("*.trans.txt")).unlink()
    summary = synthesize_corpus("librispeech", str(out), utterances_per_split=1, seed=1)
    assert not summary["skipped"] and tree_bytes(out) == finished
    foreign = tmp_path / "users-files"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a synthetic corpus"):
        synthesize_corpus("librispeech", str(foreign), utterances_per_split=1, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_commonvoice_layout_and_reader(tmp_path):
    root = tmp_path / "cv"
    summary = synthesize_corpus("commonvoice", str(root), utterances_per_split=1, languages=["en", "de"], seed=2)
    assert set(summary["splits"]) == {f"{lang}/{split}" for lang in ("en", "de") for split in ("train", "dev", "test")}
    for lang in ("en", "de"):
        rows = {}
        for split in ("train", "dev", "test", "validated"):
            with open(root / lang / f"{split}.tsv", newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
                assert tuple(reader.fieldnames) == CV_COLUMNS
                rows[split] = list(reader)
        assert len(rows["validated"]) == 3 and {r["path"] for r in rows["validated"]} == {
            r["path"] for s in ("train", "dev", "test") for r in rows[s]}
        assert all(r["locale"] == lang and len(r["client_id"]) == 128 for r in rows["validated"])
        assert not {r["client_id"] for r in rows["train"]} & {r["client_id"] for r in rows["test"]}
        durations = (root / lang / "clip_durations.tsv").read_text().splitlines()
        assert durations[0] == "clip\tduration[ms]" and len(durations) == 4
    records = list(read_corpus("commonvoice", str(root)))
    assert Counter((r.language, r.split) for r in records) == {
        (lang, split): 1 for lang in ("en", "de") for split in ("train", "dev", "test")}
    for utt in records:
        assert isinstance(utt, Utterance)
        info = sf.info(utt.audio_uri)
        assert (info.samplerate, info.channels, info.format) == (48000, 1, "MP3")
        assert utt.text[0].isupper() and utt.text[-1] in ".?"


@pytest.mark.integration
def test_pool_matches_in_process(tmp_path, monkeypatch):
    serial = tmp_path / "serial"
    synthesize_corpus("commonvoice", str(serial), utterances_per_split=2, languages=["fr"], seed=3, workers=1)
    monkeypatch.setattr(corpus_module, "IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(corpus_module, "BATCH", 2)
    pooled = tmp_path / "pooled"
    summary = synthesize_corpus("commonvoice", str(pooled), utterances_per_split=2, languages=["fr"], seed=3, workers=2)
    assert summary["workers"] == 2
    assert tree_bytes(pooled) == tree_bytes(serial)


@pytest.mark.integration
def test_synthesise_to_s3_and_read_back(s3_bucket):
    from pipeline.uri import filesystem

    out = f"{s3_bucket}/synthetic/LibriSpeech"
    summary = synthesize_corpus("librispeech", out, utterances_per_split=1, seed=0)
    assert summary["utterances"] == 3
    records = list(read_corpus("librispeech", out))
    assert len(records) == 3 and all(isinstance(r, Utterance) and r.audio_uri.startswith(out) for r in records)
    fs, _ = filesystem(out)
    with fs.open(records[0].audio_uri, "rb") as f:
        audio, rate = sf.read(f)
    assert rate == 16000 and len(audio) > 8000
    assert synthesize_corpus("librispeech", out, utterances_per_split=1, seed=0)["skipped"]


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", "--layout", "commonvoice", "--out", str(out), "--utterances-per-split", "1",
                 "--languages", "es"]) == 0
    printed = capsys.readouterr().out
    assert "commonvoice corpus at" in printed and "es/train" in printed
    assert len(list((out / "es" / "clips").iterdir())) == 3
    cases = [
        (["--layout", "commonvoice", "--out", str(tmp_path / "x"), "--languages", "en,xx"], "language(s) xx"),
        (["--layout", "librispeech", "--out", str(tmp_path / "x"), "--languages", "de"], "English only"),
        (["--layout", "librispeech", "--out", str(tmp_path / "x"), "--hours", "-1"], "positive"),
        (["--layout", "librispeech", "--out", str(out), "--utterances-per-split", "1"], "other settings"),
        (["--layout", "librispeech", "--out", str(tmp_path), "--overwrite"], "not a synthetic corpus"),
        (["--layout", "librispeech", "--out", str(out / "es" / "train.tsv")], "not a directory"),
    ]
    for argv, message in cases:
        assert main(["synth", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err and "Traceback" not in err
