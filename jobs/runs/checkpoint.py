"""Checkpoint directories: model weights + run metadata + strategy state, with an integrity list.

A checkpoint is written into a fresh local folder and handed to `ray.train.report`, which uploads it
to the run's storage URI and only then registers it; `checkpoint.json` (written last) lists every
file with its sha256, so a half-written or corrupted checkpoint is detected on load instead of
silently restoring garbage.
"""

from __future__ import annotations

import hashlib
import json
import os

import torch

MODEL_FILE = "model.pt"
META_FILE = "meta.json"
INDEX_FILE = "checkpoint.json"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write_bytes(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_model(directory: str, state_dict: dict, meta: dict) -> list[str]:
    """Full weights + metadata (task, architecture, model config, step, metrics)."""
    tmp = os.path.join(directory, MODEL_FILE + ".tmp")
    torch.save(state_dict, tmp)
    os.replace(tmp, os.path.join(directory, MODEL_FILE))
    _atomic_write_bytes(os.path.join(directory, META_FILE), json.dumps(meta, indent=2).encode())
    return [MODEL_FILE, META_FILE]


def write_index(directory: str, files: list[str], rank: int) -> str:
    """This rank's integrity list (rank 0: checkpoint.json, others: checkpoint.rank<N>.json)."""
    name = INDEX_FILE if rank == 0 else f"checkpoint.rank{rank}.json"
    index = {f: sha256_file(os.path.join(directory, f)) for f in sorted(files)}
    _atomic_write_bytes(os.path.join(directory, name), json.dumps(index, indent=1).encode())
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
                if not os.path.exists(path) or sha256_file(path) != digest:
                    raise RuntimeError(f"checkpoint {directory} is corrupt: {file} does not match")
    with open(os.path.join(directory, META_FILE)) as f:
        return json.load(f)
