"""Training-time loading: bucketing, padding with lengths, CMVN, reproducible order per epoch."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.loading import LocalLoader, bucket_batches, pad_sequences
from pipeline.split_reader import AUDIO_TOKENS
from pipeline.manifest import FORMAT_VERSION

N_MELS = 4


def write_split(root, name="train", n=40, shards=3, audio_tokens=True, seed=0):
    """A split in the preprocessed layout of CONTRACTS.md (shards + manifest.json)."""
    rng = np.random.default_rng(seed)
    split = root / name
    split.mkdir(parents=True)
    rows = []
    for i in range(n):
        frames = int(rng.integers(5, 60))
        rows.append({
            "utt_id": f"{name}-{i:03d}", "speaker": f"spk{i % 4}", "language": "en",
            "text": "ab" * (1 + i % 3), "duration": frames / 100.0, "num_frames": frames,
            "features": (rng.normal(2.0, 3.0, (frames, N_MELS))).astype("<f2").tobytes(),
            "token_ids": [1, 2] * (1 + i % 3),
            **({"audio_tokens": rng.integers(0, 256, frames * 2).tolist()} if audio_tokens else {}),
        })
    entries = []
    for k in range(shards):
        path = f"shard-{k:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows[k::shards]), split / path)
        entries.append({"path": path, "num_rows": len(rows[k::shards]), "sha256": ""})
    manifest = {
        "split": name, "corpus": "librispeech", "num_utterances": n, "hours": 0.01,
        "num_frames": sum(r["num_frames"] for r in rows),
        "feature": {"kind": "log-mel", "sample_rate": 16000, "n_mels": N_MELS, "win_length": 400,
                    "hop_length": 160, "n_fft": 400, "dtype": "float16"},
        "cmvn": {"mean": [2.0] * N_MELS, "std": [3.0] * N_MELS, "computed_on": [name]},
        "text_tokenizer": {"kind": "char", "vocab_size": 3, "blank_id": 0},
        "audio_tokenizer": {"kind": "mulaw", "vocab_size": 256, "rate_hz": 200} if audio_tokens else None,
        "shards": entries, "content_hash": f"hash-{name}", "format_version": FORMAT_VERSION,
    }
    (split / "manifest.json").write_text(json.dumps(manifest))
    return split, rows


def test_bucket_batches_groups_similar_lengths_and_covers_everything():
    rng = random.Random(1)
    lengths = [rng.random() * 10 for _ in range(50)]
    groups = bucket_batches(lengths, 8, random.Random(0))
    assert sorted(i for g in groups for i in g) == list(range(50))
    ordered = sorted(lengths)
    for g in groups:  # a bucket holds neighbours in the sorted order
        ranks = sorted(ordered.index(lengths[i]) for i in g)
        assert ranks[-1] - ranks[0] == len(g) - 1
    assert groups != bucket_batches(lengths, 8, None)  # shuffled batch order


def test_pad_sequences_pads_with_zero_and_keeps_lengths():
    out, lengths = pad_sequences([[3, 4, 5], [7]])
    assert out.tolist() == [[3, 4, 5], [7, 0, 0]] and lengths.tolist() == [3, 1]


def test_local_loader_batches_follow_the_contract(tmp_path):
    split, rows = write_split(tmp_path)
    by_id = {r["utt_id"]: r for r in rows}
    seen = []
    for batch in LocalLoader(str(split), batch_size=8, pool_size=16).epoch(0):
        b, t, m = batch["features"].shape
        assert batch["features"].dtype == torch.float32 and m == N_MELS
        assert batch["tokens"].dtype == torch.long and batch["audio_tokens"].dtype == torch.long
        assert len(batch["texts"]) == len(batch["utt_ids"]) == b <= 8
        assert int(batch["feature_lengths"].max()) == t
        for i, utt in enumerate(batch["utt_ids"]):
            row = by_id[utt]
            n = row["num_frames"]
            assert int(batch["feature_lengths"][i]) == n
            raw = np.frombuffer(row["features"], "<f2").astype(np.float32).reshape(n, N_MELS)
            np.testing.assert_allclose(batch["features"][i, :n].numpy(), (raw - 2.0) / 3.0, atol=1e-5)
            assert torch.all(batch["features"][i, n:] == 0)  # padding stays zero after CMVN
            u = int(batch["token_lengths"][i])
            assert batch["tokens"][i, :u].tolist() == row["token_ids"]
            assert torch.all(batch["tokens"][i, u:] == 0)
            assert batch["texts"][i] == row["text"]
            assert int(batch["audio_token_lengths"][i]) == len(row["audio_tokens"])
        seen += batch["utt_ids"]
    assert sorted(seen) == sorted(by_id)  # every row exactly once per epoch


def test_order_is_reproducible_per_epoch_and_differs_between_epochs(tmp_path):
    split, _ = write_split(tmp_path)
    order = lambda loader, e: [u for b in loader.epoch(e) for u in b["utt_ids"]]  # noqa: E731
    a, b = LocalLoader(str(split), batch_size=4, seed=7), LocalLoader(str(split), batch_size=4, seed=7)
    assert order(a, 0) == order(b, 0) and order(a, 1) == order(b, 1)
    assert order(a, 0) != order(a, 1)
    assert order(a, 0) != order(LocalLoader(str(split), batch_size=4, seed=8), 0)
    fixed = LocalLoader(str(split), batch_size=4, shuffle=False)
    assert order(fixed, 0) == order(fixed, 3)


def test_buckets_cut_padding_against_random_batches(tmp_path):
    split, rows = write_split(tmp_path, n=64, shards=1)
    padded = sum(int(b["feature_lengths"].max()) * len(b["utt_ids"])
                 for b in LocalLoader(str(split), batch_size=8, pool_size=64).epoch(0))
    rng = random.Random(0)
    frames = [r["num_frames"] for r in rows]
    rng.shuffle(frames)
    random_padded = sum(max(frames[i:i + 8]) * len(frames[i:i + 8]) for i in range(0, 64, 8))
    assert padded < 0.8 * random_padded


def test_generation_crops_long_token_sequences(tmp_path):
    split, _ = write_split(tmp_path)
    for batch in LocalLoader(str(split), batch_size=8, content=AUDIO_TOKENS, max_audio_tokens=16).epoch(0):
        assert "features" not in batch and batch["audio_tokens"].shape[1] <= 16


def test_missing_split_is_a_user_error(tmp_path):
    from pipeline.errors import UserError

    with pytest.raises(UserError, match="does not exist"):
        LocalLoader(str(tmp_path / "nope"))


# Ray Data per-worker shards (ray_dataset + iter_worker_batches) run inside real Ray Train workers
# in tests/test_train_integration.py.


def test_split_of_an_older_shard_format_asks_for_a_new_preprocess(tmp_path):
    from pipeline.errors import UserError

    split, _ = write_split(tmp_path)
    manifest = json.loads((split / "manifest.json").read_text())
    (split / "manifest.json").write_text(json.dumps(dict(manifest, format_version=1)))
    with pytest.raises(UserError, match="shard format 1.*run `lact-audio preprocess` again"):
        LocalLoader(str(split))


def test_training_and_evaluation_read_the_same_normalised_features(tmp_path):
    """One shard reader (pipeline.split_reader): the loader's batches and evaluation's utterance
    list carry the same CMVN-normalised features for every utterance."""
    from jobs.evaluation.data import read_split

    split, _ = write_split(tmp_path)
    loaded = {}
    for batch in LocalLoader(str(split), batch_size=8, shuffle=False).epoch(0):
        for utt_id, feats, length in zip(batch["utt_ids"], batch["features"], batch["feature_lengths"]):
            loaded[utt_id] = feats[: int(length)]
    evaluated = read_split(str(split)).utterances
    assert len(evaluated) == len(loaded)
    for utt in evaluated:
        assert torch.equal(utt.features, loaded[utt.utt_id])


def test_batch_content_names_the_columns_without_a_task():
    from pipeline.split_reader import FEATURES_AND_TEXT

    with_tokens = {"audio_tokenizer": {"kind": "mulaw"}}
    assert "audio_tokens" in FEATURES_AND_TEXT.columns(with_tokens)
    assert "audio_tokens" not in FEATURES_AND_TEXT.columns(with_tokens, audio_tokens=False)
    assert "audio_tokens" not in FEATURES_AND_TEXT.columns({})
    assert AUDIO_TOKENS.columns({}) == ["utt_id", "text", "duration", "audio_tokens"]
