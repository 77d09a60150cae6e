"""Tokenizers a run builds before its shards: text (char or SentencePiece BPE) and audio (μ-law or
k-means on log-mel frames). Fitted ones (BPE, k-means) are cached under OUTPUT/tokenizers/ with the
key of their inputs, so a re-run reuses them instead of fitting again.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np

from pipeline.audio_tokenizer import KMEANS_CODEBOOK_PATH, KMeansMelTokenizer, MuLawTokenizer
from pipeline.errors import UserError
from pipeline.files import read_json, write_atomic, write_json
from pipeline.manifest import FORMAT_VERSION
from pipeline.preprocessing.config import PreprocessConfig
from pipeline.preprocessing.plan import Plan, content_key
from pipeline.preprocessing.shard_runner import map_items
from pipeline.preprocessing.shard_worker import sample_frames
from pipeline.text_tokenizer import BPE_MODEL_PATH, BPETokenizer, CharTokenizer
from pipeline.uri import filesystem, join

KMEANS_SAMPLE_UTTERANCES_PER_TASK = 16


def _cached_artifact(output: str, name: str, key: str) -> bytes | None:
    """tokenizers/<name> if tokenizers/<name>.json says it was built from the same inputs."""
    try:
        meta = read_json(join(output, "tokenizers", f"{name}.json"))
        fs, path = filesystem(join(output, "tokenizers", name))
        with fs.open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, OSError, ValueError):
        return None
    if meta.get("key") != key or meta.get("sha256") != hashlib.sha256(data).hexdigest():
        return None
    return data


def _store_artifact(output: str, name: str, key: str, data: bytes) -> None:
    write_atomic(join(output, "tokenizers", name), data)
    write_json(join(output, "tokenizers", f"{name}.json"), {"key": key, "sha256": hashlib.sha256(data).hexdigest()})


def text_tokenizer(config: PreprocessConfig, train_texts: list[str]):
    if config.text_tokenizer == "char":
        return CharTokenizer.build(train_texts)
    key = content_key({"texts": sorted(train_texts), "vocab_size": config.bpe_vocab_size, "v": FORMAT_VERSION})
    name = BPE_MODEL_PATH.split("/", 1)[1]
    cached = _cached_artifact(config.output_uri, name, key)
    if cached is not None:
        return BPETokenizer(cached)
    config.log(f"training SentencePiece BPE (vocab {config.bpe_vocab_size}) on {len(train_texts)} transcripts")
    tokenizer = BPETokenizer.train(train_texts, config.bpe_vocab_size)
    _store_artifact(config.output_uri, name, key, tokenizer.model_proto)
    return tokenizer


def audio_tokenizer(config: PreprocessConfig, plan: Plan, settings: dict, need_ray):
    """None, μ-law, or k-means fitted on frames of up to kmeans_fit_utterances training utterances
    (the frames come from Ray tasks: `need_ray()` starts Ray only when a fit is due)."""
    if config.audio_tokens is None:
        return None
    if config.audio_tokens == "mulaw":
        return MuLawTokenizer(rate_hz=config.mulaw_rate)
    train = sorted((r for s in plan.stats_splits for r in plan.utterances.get(s, [])),
                   key=lambda r: hashlib.sha256(r["utt_id"].encode()).hexdigest())[: config.kmeans_fit_utterances]
    if not train:
        raise UserError("no training utterances to fit the k-means audio codebook on")
    per_utt = max(1, config.kmeans_fit_frames // len(train))
    key = content_key({"utts": [(r["utt_id"], r["audio_uri"]) for r in train], "feature": settings["feature"],
                       "clusters": config.kmeans_clusters, "per_utt": per_utt, "seed": config.seed,
                       "min": config.min_seconds, "max": config.max_seconds, "v": FORMAT_VERSION})
    name = KMEANS_CODEBOOK_PATH.split("/", 1)[1]
    cached = _cached_artifact(config.output_uri, name, key)
    if cached is not None:
        return KMeansMelTokenizer(np.load(io.BytesIO(cached), allow_pickle=False), settings["feature"])
    config.log(f"fitting the k-means codebook ({config.kmeans_clusters}) on {len(train)} training utterances")
    frames = _sample_frames(train, {**settings, "frames_per_utterance": per_utt}, need_ray)
    try:
        tokenizer = KMeansMelTokenizer.fit(frames, config.kmeans_clusters, seed=config.seed,
                                           feature_config=settings["feature"])
    except ValueError as exc:
        raise UserError(f"cannot fit the k-means audio codebook: {exc}") from exc
    _store_artifact(config.output_uri, name, key, tokenizer.to_bytes())
    return tokenizer


def _sample_frames(train: list[dict], settings: dict, need_ray) -> np.ndarray:
    import pickle


    need_ray()
    step = KMEANS_SAMPLE_UTTERANCES_PER_TASK
    chunks = [pickle.dumps({"index": i, "utterances": train[i:i + step]}) for i in range(0, len(train), step)]
    n_mels = settings["feature"]["n_mels"]
    rows = map_items(chunks, sample_frames, settings).iter_rows()
    # In plan order, whatever order the tasks finish in: the same inputs fit the same codebook.
    frames = [np.frombuffer(r["frames"], np.float16).reshape(-1, n_mels) for r in sorted(rows, key=lambda r: r["index"])]
    return np.concatenate(frames).astype(np.float32)
