"""Per-split manifest.json (and the name of the run's summary.json), written with pipeline.files.

    read_manifest(split_uri) -> dict    (split_uri = OUTPUT/<split>, local path or s3://)

Manifest keys (CONTRACTS.md): split, corpus, num_utterances, hours, num_frames, feature, cmvn,
text_tokenizer, audio_tokenizer, shards [{path, num_rows, sha256, key}], content_hash; plus
num_quarantined, min_seconds, max_seconds, format_version.
"""

from __future__ import annotations

import hashlib
import json

from pipeline.errors import UserError
from pipeline.files import read_json, write_json
from pipeline.uri import join

# 2: features as one binary float16 value per utterance (1: a list<float16> column)
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
SUMMARY = "summary.json"


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(manifest: dict) -> str:
    """sha256 over everything that defines the split's data (shard hashes, features, CMVN, tokenizers)."""
    keys = ("split", "corpus", "feature", "cmvn", "text_tokenizer", "audio_tokenizer", "format_version")
    body = {k: manifest.get(k) for k in keys}
    body["shards"] = [(s["path"], s["num_rows"], s["sha256"]) for s in manifest["shards"]]
    return hashlib.sha256(canonical_json(body)).hexdigest()


def write_manifest(split_uri: str, manifest: dict) -> dict:
    manifest = dict(manifest, format_version=FORMAT_VERSION)
    manifest["content_hash"] = content_hash(manifest)
    write_json(join(split_uri, MANIFEST), manifest)
    return manifest


def read_manifest(split_uri: str) -> dict:
    uri = join(split_uri, MANIFEST)
    try:
        manifest = read_json(uri)
    except FileNotFoundError:
        raise UserError(f"no preprocessed split at {split_uri} ({MANIFEST} missing; run `lact-audio preprocess`)") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(f"split {split_uri} was written in shard format {manifest.get('format_version')}, this "
                        f"version reads format {FORMAT_VERSION}: run `lact-audio preprocess` again (it rewrites the shards)")
    return manifest
