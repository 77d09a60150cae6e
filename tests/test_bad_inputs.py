"""The bad-input fixture corpora through the whole Ray Data pipeline: every bad row is quarantined
with a reason or repaired, every good row is written, the run never crashes."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline.manifest import read_manifest
from pipeline.preprocess import PreprocessConfig, run_preprocess
from pipeline.shards import feature_matrix
from tests.fixtures.bad_corpus import build_bad_commonvoice, build_bad_librispeech, voice_like

pytestmark = pytest.mark.integration

AUDIO_REASONS = {
    "zero_byte_file": {"empty_audio_file"},
    "truncated_flac": {"decode_error", "truncated_audio"},
    "random_bytes": {"decode_error"},
    "text_as_mp3": {"decode_error"},
    "nan_samples": {"non_finite_samples"},
    "inf_samples": {"non_finite_samples"},
    "too_short": {"too_short"},
    "too_long": {"too_long"},
    "out_of_vocabulary": {"empty_after_normalization", "oov_characters"},
}
REPAIRS = {"sample_rate_8k": "resampled_8000", "sample_rate_44k": "resampled_44100", "stereo": "downmixed_2ch"}


def written_ids(out) -> dict[str, list[str]]:
    ids = {}
    for split_dir in sorted(p for p in out.iterdir() if (p / "manifest.json").exists()):
        manifest = read_manifest(str(split_dir))
        for shard in manifest["shards"]:
            table = pq.read_table(split_dir / shard["path"], columns=["utt_id"])
            for utt in table.column("utt_id").to_pylist():
                ids.setdefault(utt, []).append(split_dir.name)
    return ids


def check_outcomes(corpus, out, summary):
    written = written_ids(out)
    quarantine = pq.read_table(out / "quarantine.parquet").to_pylist()
    reasons: dict[str, set[str]] = {}
    for row in quarantine:
        assert row["reason"] and row["detail"], row
        reasons.setdefault(row["utt_id"], set()).add(row["reason"])

    assert all(len(splits) == 1 for splits in written.values()), "an utterance was written twice"
    for utt in corpus.kept:
        assert utt in written, f"good/repairable {utt} was not written"
        assert utt not in reasons, f"written {utt} is also quarantined: {reasons.get(utt)}"
    for utt, defect in corpus.rejected.items():
        assert utt not in written, f"{utt} ({defect}) was written"
        assert utt in reasons, f"{utt} ({defect}) is missing from the quarantine table"
        if utt in corpus.reader_reasons:
            assert reasons[utt] == {corpus.reader_reasons[utt]}
        elif defect in AUDIO_REASONS:
            assert reasons[utt] <= AUDIO_REASONS[defect], (utt, defect, reasons[utt])
    for utt, defect in corpus.either.items():
        assert (utt in written) != (utt in reasons), f"{utt} ({defect}) must be written xor quarantined"
    repaired = {r["utt_id"]: r["repairs"] for r in summary["repaired_utterances"]}
    for utt, defect in corpus.repairable.items():
        assert REPAIRS[defect] in repaired[utt], (utt, repaired.get(utt))
    # Nothing silently lost: every input is written or quarantined exactly once.
    assert summary["written"] + summary["quarantined"] == summary["inputs"]
    assert summary["written"] == len(written)
    assert sum(summary["quarantined_by_reason"].values()) == len(quarantine)


def test_bad_librispeech(ray_cluster, tmp_path):
    corpus = build_bad_librispeech(tmp_path / "LibriSpeech", max_seconds=20.0)
    # A dev utterance with characters that never occur in the training text (q, z, j).
    dev = tmp_path / "LibriSpeech" / "dev-clean" / "200" / "2000"
    sf.write(dev / "200-2000-0002.flac", voice_like(1.5, seed=40), 16000, format="FLAC")
    with open(dev / "200-2000-0002.trans.txt".replace("-0002", ""), "a") as f:
        f.write("200-2000-0002 JAZZ QUIZ\n")
    out = tmp_path / "out"
    summary = run_preprocess(PreprocessConfig("librispeech", str(tmp_path / "LibriSpeech"), str(out),
                                              max_seconds=corpus.max_seconds, rows_per_shard=4, progress=False))
    check_outcomes(corpus, out, summary)
    oov = [r for r in pq.read_table(out / "quarantine.parquet").to_pylist() if r["utt_id"] == "200-2000-0002"]
    assert [r["reason"] for r in oov] == ["oov_characters"] and "j" in oov[0]["detail"]
    # Repaired audio really is 16 kHz mono of the original length.
    table = pq.read_table(next((out / "train-clean-100").glob("shard-00002-*.parquet"))).to_pylist()
    by_id = {r["utt_id"]: r for r in table}
    for utt in ("100-1000-0009", "100-1000-0010", "100-1000-0011"):
        assert by_id[utt]["duration"] == pytest.approx(1.5, abs=0.01)
        assert by_id[utt]["num_frames"] == 151
        feats = feature_matrix(by_id[utt]["features"], 80)
        assert feats.shape == (151, 80) and np.isfinite(feats).all()


def test_bad_commonvoice_with_kmeans_tokens(ray_cluster, tmp_path):
    corpus = build_bad_commonvoice(tmp_path / "cv", max_seconds=20.0)
    out = tmp_path / "out"
    summary = run_preprocess(PreprocessConfig("commonvoice", str(tmp_path / "cv"), str(out),
                                              max_seconds=corpus.max_seconds, audio_tokens="kmeans",
                                              kmeans_clusters=16, progress=False))
    check_outcomes(corpus, out, summary)
    manifest = read_manifest(str(out / "train"))
    assert manifest["audio_tokenizer"]["kind"] == "kmeans" and manifest["audio_tokenizer"]["vocab_size"] == 16
    rows = pq.read_table(out / "train" / manifest["shards"][0]["path"]).to_pylist()
    assert {r["language"] for r in rows} == {"de", "en"}
    for r in rows:
        assert len(r["audio_tokens"]) == r["num_frames"] and 0 <= min(r["audio_tokens"]) <= max(r["audio_tokens"]) < 16
