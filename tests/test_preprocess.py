"""`lact-audio preprocess` end to end on a real local Ray cluster and a real S3 API server:
output layout and contents, idempotent re-runs, resume after lost shards, user errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.cli import main
from pipeline.audio_tokenizer import load_audio_tokenizer
from pipeline.manifest import read_manifest
from pipeline.normalizer import FeatureNormalizer
from pipeline.preprocess import PreprocessConfig, run_preprocess
from pipeline.shards import feature_matrix
from pipeline.text_tokenizer import load_text_tokenizer
from pipeline.uri import filesystem
from tests.fixtures.bad_corpus import build_bad_librispeech

MANIFEST_KEYS = {"split", "corpus", "num_utterances", "hours", "num_frames", "feature", "cmvn", "text_tokenizer",
                 "audio_tokenizer", "shards", "content_hash"}


def shard_files(split_dir):
    """shard-NNNNN (the index; the file name adds its key) -> (bytes, mtime)."""
    return {p.name[:11]: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(split_dir.glob("shard-*.parquet"))}


def shard_path(split_dir, index: int):
    return next(split_dir.glob(f"shard-{index:05d}-*.parquet"))


@pytest.mark.integration
def test_local_output_idempotent_and_resumable(ray_cluster, tmp_path):
    build_bad_librispeech(tmp_path / "LibriSpeech", max_seconds=20.0)
    out = tmp_path / "out"
    config = dict(corpus="librispeech", input_uri=str(tmp_path / "LibriSpeech"), output_uri=str(out),
                  max_seconds=20.0, rows_per_shard=3, progress=False)
    first = run_preprocess(PreprocessConfig(**config))
    assert (out / "summary.json").exists() and (out / "quarantine.parquet").exists()
    assert json.loads((out / "summary.json").read_text())["written"] == first["written"] > 0

    train = read_manifest(str(out / "train-clean-100"))
    dev = read_manifest(str(out / "dev-clean"))
    assert MANIFEST_KEYS <= set(train) and MANIFEST_KEYS <= set(dev)
    assert train["cmvn"] == dev["cmvn"] and train["cmvn"]["computed_on"] == ["train-clean-100"]
    assert train["text_tokenizer"] == dev["text_tokenizer"] and train["audio_tokenizer"] is None
    # 13 train utterances survive the reader and text checks: 5 shards of at most 3 rows
    # (audio defects are quarantined inside the shards, so some hold fewer).
    assert len(train["shards"]) == 5 and max(s["num_rows"] for s in train["shards"]) <= 3

    # Shard contents agree with the manifest, the tokenizer and the CMVN statistics.
    tokenizer = load_text_tokenizer(train, str(out / "train-clean-100"))
    frames = []
    for shard in train["shards"]:
        table = pq.read_table(out / "train-clean-100" / shard["path"])
        assert table.num_rows == shard["num_rows"]
        assert table.schema.field("features").type == pa.binary()
        for row in table.to_pylist():
            feats = feature_matrix(row["features"], 80)
            assert feats.shape == (row["num_frames"], 80)
            assert row["num_frames"] == int(row["duration"] * 100) + 1
            assert tokenizer.decode(row["token_ids"]) == row["text"] and 0 not in row["token_ids"]
            frames.append(feats)
    frames = np.concatenate(frames)
    assert sum(s["num_rows"] for s in train["shards"]) == train["num_utterances"]
    assert train["num_frames"] == len(frames)
    np.testing.assert_allclose(train["cmvn"]["mean"], frames.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(train["cmvn"]["std"], frames.std(0), rtol=1e-3)
    normalised = FeatureNormalizer.from_manifest(train)(frames)
    assert np.abs(normalised.mean(0)).max() < 1e-3 and np.abs(normalised.std(0) - 1).max() < 1e-2

    # Idempotent: the same run again writes nothing and leaves every shard untouched.
    before = shard_files(out / "train-clean-100")
    second = run_preprocess(PreprocessConfig(**config))
    assert second["shards_written"] == 0 and second["shards_skipped"] == 6
    assert second["ray_cpus"] is None and second["task_cpu_seconds"] == 0     # no Ray work at all
    assert shard_files(out / "train-clean-100") == before
    assert read_manifest(str(out / "train-clean-100"))["content_hash"] == train["content_hash"]
    assert {k: second[k] for k in ("written", "quarantined_by_reason", "hours")} == \
        {k: first[k] for k in ("written", "quarantined_by_reason", "hours")}

    # Resumable: a lost shard and a damaged one are rebuilt (identical bytes), the rest is skipped.
    shard_path(out / "train-clean-100", 1).unlink()
    damaged = shard_path(out / "train-clean-100", 2)
    damaged.write_bytes(before["shard-00002"][0][:100])
    third = run_preprocess(PreprocessConfig(**config))
    assert third["shards_written"] == 2 and third["shards_skipped"] == 4 and third["ray_cpus"] == 4
    after = shard_files(out / "train-clean-100")
    assert {name: data for name, (data, _) in after.items()} == {name: data for name, (data, _) in before.items()}
    assert after["shard-00000"][1] == before["shard-00000"][1]   # not rewritten
    assert read_manifest(str(out / "train-clean-100"))["content_hash"] == train["content_hash"]


@pytest.mark.integration
def test_s3_input_and_output_with_bpe_and_mulaw(ray_cluster, s3_bucket, tmp_path):
    build_bad_librispeech(tmp_path / "LibriSpeech", max_seconds=20.0)
    fs, _ = filesystem(s3_bucket)
    fs.put(str(tmp_path / "LibriSpeech"), f"{s3_bucket.removeprefix('s3://')}/corpus", recursive=True)
    output = f"{s3_bucket}/features"
    config = dict(corpus="librispeech", input_uri=f"{s3_bucket}/corpus", output_uri=output,
                  max_seconds=20.0, text_tokenizer="bpe", bpe_vocab_size=40, audio_tokens="mulaw", progress=False)
    first = run_preprocess(PreprocessConfig(**config))
    assert first["written"] > 0 and first["shards_written"] == 2

    split_uri = f"{output}/train-clean-100"
    manifest = read_manifest(split_uri)
    assert manifest["text_tokenizer"]["kind"] == "bpe" and manifest["audio_tokenizer"]["rate_hz"] == 4000
    tokenizer = load_text_tokenizer(manifest, split_uri)
    audio_tokenizer = load_audio_tokenizer(manifest, split_uri)
    fs.invalidate_cache()
    with fs.open(f"{split_uri}/{manifest['shards'][0]['path']}", "rb") as f:
        rows = pq.read_table(f).to_pylist()
    for row in rows:
        assert tokenizer.decode(row["token_ids"]) == row["text"]
        assert len(row["audio_tokens"]) == pytest.approx(row["duration"] * 4000, abs=2)
        assert 0 <= min(row["audio_tokens"]) and max(row["audio_tokens"]) < 256
        wave = audio_tokenizer.decode(np.asarray(row["audio_tokens"]))
        assert wave.abs().max() <= 1.0 and wave.std() > 0.01
    assert fs.exists(f"{s3_bucket}/features/quarantine.parquet") and fs.exists(f"{s3_bucket}/features/summary.json")

    again = run_preprocess(PreprocessConfig(**config))
    assert again["shards_written"] == 0 and again["shards_skipped"] == 2
    assert read_manifest(split_uri)["content_hash"] == manifest["content_hash"]


def _cli_error(capsys, *argv) -> str:
    assert main(["preprocess", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_command_line_mistakes_are_one_line_errors(tmp_path, capsys):
    build_bad_librispeech(tmp_path / "LibriSpeech")
    corpus = str(tmp_path / "LibriSpeech")
    assert "unknown corpus" in _cli_error(capsys, "--corpus", "timit", "--input", corpus, "--output", str(tmp_path / "o"))
    assert "input does not exist" in _cli_error(capsys, "--corpus", "librispeech", "--input",
                                                str(tmp_path / "missing"), "--output", str(tmp_path / "o"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert "cannot write output" in _cli_error(capsys, "--corpus", "librispeech", "--input", corpus,
                                               "--output", str(blocker / "out"))
    assert "dev-other" in _cli_error(capsys, "--corpus", "librispeech", "--input", corpus, "--output",
                                     str(tmp_path / "o"), "--splits", "dev-other")
    assert "--audio-tokens" in _cli_error(capsys, "--corpus", "librispeech", "--input", corpus, "--output",
                                          str(tmp_path / "o"), "--audio-tokens", "wavelets")



@pytest.mark.integration
def test_real_librispeech_files(ray_cluster, realspeech_dir, tmp_path):
    """The real LibriSpeech sample has no training split: vocabulary and CMVN come from all splits."""
    expected = {}
    for line in (realspeech_dir / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("corpus") == "LibriSpeech":
            expected[row["id"]] = row
    summary = run_preprocess(PreprocessConfig("librispeech", str(realspeech_dir / "LibriSpeech"), str(tmp_path / "out"),
                                              progress=False))
    assert summary["written"] == len(expected) and summary["quarantined"] == 0
    manifest = read_manifest(str(tmp_path / "out" / "dev-clean"))
    assert manifest["cmvn"]["computed_on"] == ["dev-clean", "test-clean"]
    seen = 0
    for split in ("dev-clean", "test-clean"):
        manifest = read_manifest(str(tmp_path / "out" / split))
        for shard in manifest["shards"]:
            for row in pq.read_table(tmp_path / "out" / split / shard["path"],
                                     columns=["utt_id", "text", "duration", "num_frames"]).to_pylist():
                truth = expected[row["utt_id"]]
                assert row["duration"] == pytest.approx(truth["duration_s"], abs=0.01)
                assert row["text"] == truth["text"].lower()
                seen += 1
    assert seen == len(expected)
