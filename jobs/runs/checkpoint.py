"""Checkpoint directories: model weights + run metadata + strategy state, with an integrity list.

A checkpoint is written into a fresh local folder and handed to `ray.train.report`, which uploads it
to the run's storage URI and only then registers it; `checkpoint.json` (written last) lists every
file with its sha256, so a half-written or corrupted checkpoint is detected on load instead of
silently restoring garbage.
"""

from __future__ import annotations

import io
import json
import os

import torch

from pipeline.files import sha256_of, write_atomic, write_json

MODEL_FILE = "model.pt"
META_FILE = "meta.json"
INDEX_FILE = "checkpoint.json"


def write_model(directory: str, state_dict: dict, meta: dict) -> list[str]:
    """Full weights + metadata (task, architecture, model config, step, metrics)."""
    weights = io.BytesIO()
    torch.save(state_dict, weights)
    write_atomic(os.path.join(directory, MODEL_FILE), weights.getbuffer())
    write_json(os.path.join(directory, META_FILE), meta, sort_keys=False)
    return [MODEL_FILE, META_FILE]


def write_index(directory: str, files: list[str], rank: int) -> str:
    """This rank's integrity list (rank 0: checkpoint.json, others: checkpoint.rank<N>.json)."""
    name = INDEX_FILE if rank == 0 else f"checkpoint.rank{rank}.json"
    index = {f: sha256_of(os.path.join(directory, f)) for f in sorted(files)}
    write_json(os.path.join(directory, name), index, indent=1, sort_keys=False)
    return name


def verify(directory: str) -> dict:
    """Check every listed file against its sha256; returns meta.json. Raises on any mismatch."""
    indexes = [f for f in os.listdir(directory) if f.startswith("checkpoint") and f.endswith(".json")]
    if INDEX_FILE not in indexes:
        raise RuntimeError(f"checkpoint {directory} is incomplete: {INDEX_FILE} missing")
    for name in indexes:
        with open(os.path.join(directory, name)) as f:
            for file, digest in json.load(f).items():
                path = os.path.join(directory, file)
                if not os.path.exists(path) or sha256_of(path) != digest:
                    raise RuntimeError(f"checkpoint {directory} is corrupt: {file} does not match")
    with open(os.path.join(directory, META_FILE)) as f:
        return json.load(f)
