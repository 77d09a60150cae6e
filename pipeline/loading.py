"""Training-time loading of preprocessed shards: duration bucketing, padding with lengths, CMVN.

Shards are read through pipeline.split_reader (as evaluation reads them); what a batch carries is
a BatchContent the task object supplies (features + text tokens, or audio tokens). Two ways to
read a split, both yielding the same batches (CONTRACTS.md):
- `LocalLoader`: a plain iterator over the split's Parquet shards, for tests, notebooks and
  evaluation (no Ray needed);
- `ray_dataset` + `iter_worker_batches`: a Ray Data dataset that Ray Train splits into one
  shard per worker; each worker turns its stream of rows into bucketed, padded batches.

A batch is a dict:
    features [B,T,n_mels] float32 (CMVN applied, zero where padded), feature_lengths [B] long,
    tokens [B,U] long (padded with 0 = blank), token_lengths [B] long, texts list[str],
    utt_ids list[str], durations [B] float32, and audio_tokens [B,L] + audio_token_lengths [B]
    when the split has audio tokens.

Bucketing: rows are taken in pools of `pool_size`; inside a pool they are sorted by length and cut
into batches of similar duration (little padding), and the batches' order is shuffled. The order
of an epoch depends only on (seed, epoch[, worker rank]), so a run is reproducible and each epoch
differs from the last.

Sessions (ASR, optional): consecutive utterances of one recording (speaker and chapter) joined
into rows of 10-40 s (pipeline/sessions.py), planned over the whole split before anything is
shuffled (pipeline/session_plan.py); pools, batches, `pool_size` and `batch_size` then count
sessions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch

from pipeline import uri as uris
from pipeline.session_plan import SessionPlan, SessionReader, plan_sessions, session_dataset
from pipeline.sessions import SessionConfig
from pipeline.split_reader import FEATURES_AND_TEXT, BatchContent, FeatureReader, SplitReader, open_split


class Collator:
    """Rows (column dict + row indices) -> one padded batch, with CMVN applied to features."""

    def __init__(self, manifest: dict, content: BatchContent = FEATURES_AND_TEXT,
                 max_audio_tokens: int | None = None, seed: int = 0):
        self.content = content
        self.n_mels = int(manifest["feature"]["n_mels"])
        self.features = FeatureReader(manifest) if content.features else None
        self.max_audio_tokens = max_audio_tokens
        self.rng = random.Random(seed)  # where long audio-token sequences are cropped

    def __call__(self, columns: dict, index: list[int]) -> dict:
        batch: dict = {
            "utt_ids": [str(columns["utt_id"][i]) for i in index],
            "texts": [str(columns["text"][i]) for i in index],
            "durations": torch.tensor([float(columns["duration"][i]) for i in index],
                                      dtype=torch.float32),
        }
        if self.content.features:
            feats = [self.features(columns["features"][i]) for i in index]
            batch["features"], batch["feature_lengths"] = self._pad_features(feats)
            batch["tokens"], batch["token_lengths"] = pad_sequences(
                [columns["token_ids"][i] for i in index])
        if "audio_tokens" in columns and columns["audio_tokens"] is not None:
            seqs = [np.asarray(columns["audio_tokens"][i], dtype=np.int64) for i in index]
            if self.max_audio_tokens:
                seqs = [self._crop(s, self.max_audio_tokens) for s in seqs]
            batch["audio_tokens"], batch["audio_token_lengths"] = pad_sequences(seqs)
        return batch

    def _pad_features(self, feats: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        out = torch.zeros(len(feats), int(lengths.max()) if len(feats) else 0, self.n_mels)
        for row, f in enumerate(feats):
            out[row, : f.shape[0]] = torch.from_numpy(f)
        return out, lengths

    def _crop(self, seq: np.ndarray, length: int) -> np.ndarray:
        if len(seq) <= length:
            return seq
        start = self.rng.randrange(0, len(seq) - length + 1)
        return seq[start: start + length]


def pad_sequences(seqs) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer sequences -> [B, max_len] long padded with 0, and their lengths."""
    arrays = [np.array(s, dtype=np.int64) for s in seqs]  # a writable copy
    lengths = torch.tensor([len(a) for a in arrays], dtype=torch.long)
    out = torch.zeros(len(arrays), int(lengths.max()) if arrays else 0, dtype=torch.long)
    for row, a in enumerate(arrays):
        out[row, : len(a)] = torch.from_numpy(a)
    return out, lengths


def row_lengths(columns: dict) -> list[float]:
    """The length each row is bucketed by: its duration."""
    return [float(d) for d in columns["duration"]]


def bucket_batches(lengths: list[float], batch_size: int, rng: random.Random | None,
                   drop_last: bool = False) -> list[list[int]]:
    """Sort indices by length, cut into batches of `batch_size`, shuffle the batches' order
    (kept in length order when rng is None)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    groups = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    if drop_last and groups and len(groups[-1]) < batch_size:
        groups.pop()
    if rng is not None:
        rng.shuffle(groups)
    return groups


def epoch_rng(seed: int, epoch: int, rank: int = 0) -> random.Random:
    return random.Random(f"{seed}/{epoch}/{rank}")


class LocalLoader:
    """Batches of a preprocessed split without Ray: `for batch in LocalLoader(uri).epoch(0)`.

    shuffle=False gives a fixed order (files in manifest order, pools sorted by length) for
    evaluation; shuffle=True shuffles shards and rows per epoch from (seed, epoch). With
    sessions, the split's sessions are planned once (from seed) and read a pool at a time
    (pipeline/session_plan.py): in recording order, or shuffled per epoch.
    """

    def __init__(self, split_uri: str, batch_size: int = 16, content: BatchContent = FEATURES_AND_TEXT,
                 shuffle: bool = True, seed: int = 0, pool_size: int = 512,
                 max_audio_tokens: int | None = None, drop_last: bool = False,
                 audio_tokens: bool | None = None, sessions: SessionConfig | None = None):
        self.split = open_split(split_uri)
        self.content = content
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.pool_size = max(pool_size, batch_size)
        self.drop_last = drop_last
        self.columns = content.columns(self.split.manifest, audio_tokens)
        self.reader = SplitReader(self.split, self.columns, why=content.description)
        self.max_audio_tokens = max_audio_tokens
        # sessions are cut once, from the seed; each epoch shuffles their order
        self.session_plan: SessionPlan | None = None
        if sessions is not None:
            self.session_plan = plan_sessions(self.split.shard_uris, sessions, seed)

    @property
    def manifest(self) -> dict:
        return self.split.manifest

    def _pools(self, rng: random.Random) -> Iterator[dict]:
        """Pools of pool_size rows (utterances, or sessions) in this epoch's order."""
        if self.session_plan is not None:
            numbers = list(range(len(self.session_plan.sessions)))
            if self.shuffle:
                rng.shuffle(numbers)
            reader = SessionReader(self.session_plan, self.columns, self.manifest)
            for start in range(0, len(numbers), self.pool_size):
                yield reader.read(numbers[start: start + self.pool_size])
            return
        pool: dict = {c: [] for c in self.columns}
        for shard_columns in self.reader.shards(rng if self.shuffle else None):
            order = list(range(len(shard_columns["utt_id"])))
            if self.shuffle:
                rng.shuffle(order)
            for i in order:
                for c in self.columns:
                    pool[c].append(shard_columns[c][i])
                if len(pool["utt_id"]) >= self.pool_size:
                    yield pool
                    pool = {c: [] for c in self.columns}
        if pool["utt_id"]:
            yield pool

    def epoch(self, epoch: int = 0) -> Iterator[dict]:
        rng = epoch_rng(self.seed, epoch)
        collate = Collator(self.manifest, self.content, self.max_audio_tokens, seed=rng.randrange(2**31))
        for pool in self._pools(rng):
            groups = bucket_batches(row_lengths(pool), self.batch_size,
                                    rng if self.shuffle else None, self.drop_last)
            for group in groups:
                yield collate(pool, group)

    def __iter__(self) -> Iterator[dict]:
        return self.epoch(0)


# ---------------------------------------------------------------------------------------------
# Ray Data: one dataset per split, split by Ray Train into per-worker shards.


def pyarrow_filesystem(split_uri: str):
    """(pyarrow filesystem or None, path) for Ray Data's readers; S3 endpoint from the env."""
    if not uris.is_remote(split_uri):
        return None, uris.absolute(split_uri)
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, path = uris.filesystem(split_uri)
    return PyFileSystem(FSSpecHandler(fs)), path


def ray_dataset(split_uri: str, content: BatchContent = FEATURES_AND_TEXT, audio_tokens: bool | None = False,
                sessions: SessionPlan | None = None, seed: int = 0):
    """A Ray Data dataset over a split's shards, only the columns `content` needs (training on
    features leaves audio tokens out unless audio_tokens=True); with a session plan of the split, one
    row per planned session (pipeline/session_plan.py), numbered in an order drawn from seed."""
    import ray.data

    split = open_split(split_uri)
    fs, _ = pyarrow_filesystem(split.uri)
    paths = [uris.filesystem(s)[1] if fs is not None else s for s in split.shard_uris]
    # Ray 2.60's default Parquet reader (DataSourceV2) lists files in a task beside a new
    # footer-reading actor: ~10 s per dataset even for one shard (bench/train_fixed_cost.py), paid
    # by every training run. The manifest already names the shards, so read them with the V1
    # reader, which opens the given files directly.
    context = ray.data.DataContext.get_current()
    default, context.use_datasource_v2 = context.use_datasource_v2, False
    try:
        ds = ray.data.read_parquet(paths, filesystem=fs)
    finally:
        context.use_datasource_v2 = default
    columns = content.columns(split.manifest, audio_tokens)
    ds = ds.select_columns(columns)
    return ds if sessions is None else session_dataset(ds, columns, sessions, split.manifest, seed)


def iter_worker_batches(data_shard, manifest: dict, batch_size: int, content: BatchContent = FEATURES_AND_TEXT,
                        seed: int = 0, epoch: int = 0, rank: int = 0, pool_size: int = 512,
                        max_audio_tokens: int | None = None, drop_last: bool = False) -> Iterator[dict]:
    """Bucketed, padded batches from a Ray Train worker's dataset shard (a DataIterator).

    Ray streams pools of rows (utterances, or sessions already joined by ray_dataset), shuffled
    locally with a seed of (seed, epoch, rank); each pool is bucketed by duration like the local
    loader does.
    """
    rng = epoch_rng(seed, epoch, rank)
    collate = Collator(manifest, content, max_audio_tokens, seed=rng.randrange(2**31))
    pool_size = max(pool_size, batch_size)
    for pool in data_shard.iter_batches(batch_size=pool_size, batch_format="numpy",
                                        local_shuffle_buffer_size=pool_size,
                                        local_shuffle_seed=rng.randrange(2**31)):
        groups = bucket_batches(row_lengths(pool), batch_size, rng, drop_last)
        for group in groups:
            yield collate(pool, group)
