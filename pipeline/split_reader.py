"""The one reader of a preprocessed split: its manifest, its shards' columns, its features with CMVN.

Training batches (pipeline.loading), evaluation's utterance lists (jobs/evaluation/data.py) and the
nightly's speaker list read a split through here, so features come back the same everywhere.

    open_split      the manifest and the shards it lists
    BatchContent    which columns a model family reads: features + text tokens, or audio tokens;
                    the task objects (jobs/tasks) supply theirs, so pipeline/ names no task
    SplitReader     a split's shards a shard at a time, only the columns asked for
    FeatureReader   a shard's features value -> float32 [frames, n_mels], CMVN applied
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipeline import uri as uris
from pipeline.errors import UserError
from pipeline.manifest import read_manifest
from pipeline.normalizer import FeatureNormalizer
from pipeline.shards import feature_matrix, read_columns

FEATURE_COLUMNS = ["utt_id", "speaker", "text", "duration", "num_frames", "features", "token_ids"]
AUDIO_TOKEN_COLUMNS = ["utt_id", "text", "duration", "audio_tokens"]


@dataclass(frozen=True)
class BatchContent:
    """What a model family's batches carry: log-mel features (CMVN applied) with their text token
    ids (features=True), or audio tokens alone (features=False)."""

    features: bool = True

    def columns(self, manifest: dict | None = None, audio_tokens: bool | None = None) -> list[str]:
        """Columns to read. Beside features, audio tokens too when asked (audio_tokens=True) or,
        with audio_tokens=None, when the split has them; audio-token content always reads them."""
        if not self.features:
            return list(AUDIO_TOKEN_COLUMNS)
        if audio_tokens is None:
            audio_tokens = bool(manifest and manifest.get("audio_tokenizer"))
        return list(FEATURE_COLUMNS) + (["audio_tokens"] if audio_tokens else [])

    @property
    def description(self) -> str:
        """What needs the columns, for a missing-column error."""
        return "features and text tokens" if self.features else "audio tokens"


FEATURES_AND_TEXT = BatchContent(features=True)
AUDIO_TOKENS = BatchContent(features=False)


@dataclass
class SplitInfo:
    """What the readers need from a split's manifest."""

    uri: str
    manifest: dict
    shard_uris: list[str]

    @property
    def n_mels(self) -> int:
        return int(self.manifest["feature"]["n_mels"])

    @property
    def content_hash(self) -> str:
        return str(self.manifest.get("content_hash", ""))


def open_split(split_uri: str) -> SplitInfo:
    """Read a preprocessed split's manifest; a missing or broken split is a UserError."""
    split_uri = uris.absolute(split_uri)
    uris.require_exists(split_uri, "data split")
    manifest = read_manifest(split_uri)
    shards = [uris.join(split_uri, s["path"]) for s in manifest.get("shards", [])]
    if not shards:
        raise UserError(f"data split {split_uri} has no shards in its manifest.json")
    return SplitInfo(split_uri, manifest, shards)


class SplitReader:
    """A split's shards as column dicts (Python lists), only `columns` read; a shard without one
    of them is a UserError saying `why` they were needed."""

    def __init__(self, split: SplitInfo, columns: list[str], why: str):
        self.split = split
        self.columns = list(columns)
        self.why = why

    def shards(self, rng: random.Random | None = None) -> Iterator[dict]:
        """Every shard in manifest order, or in an order drawn from rng."""
        order = list(self.split.shard_uris)
        if rng is not None:
            rng.shuffle(order)
        for shard_uri in order:
            yield read_columns(shard_uri, self.columns, why=self.why)


class FeatureReader:
    """A shard's features value (float16 bytes) -> float32 [frames, n_mels], the split's CMVN applied."""

    def __init__(self, manifest: dict):
        self.n_mels = int(manifest["feature"]["n_mels"])
        self.normalizer = FeatureNormalizer.from_manifest(manifest)

    def __call__(self, value) -> np.ndarray:
        return np.ascontiguousarray(self.normalizer(feature_matrix(value, self.n_mels)), dtype=np.float32)
