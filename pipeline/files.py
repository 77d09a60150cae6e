"""Whole files for every command: written atomically, JSON in one format, hashed with sha256.

Readers never see a half-written file. Locally the bytes go to a temp file of a name no other
writer uses (`.tmp-<uuid>-<name>`, beside the target), are fsynced and renamed over the target,
so two writers of one file each land whole and a crash leaves only a temp file behind. On an
object store (s3://) one PUT (or a multipart upload that appears only when complete) is atomic.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid

from pipeline.uri import exists, filesystem, is_remote

TEMP_PREFIX = ".tmp-"   # a writer's temp file; what a crash may leave behind


def write_atomic(uri: str, data) -> None:
    """Write `data` (bytes or any bytes-like buffer, e.g. pyarrow's) to a local path or URI."""
    fs, path = filesystem(uri)
    if is_remote(uri):
        fs.pipe_file(path, data if isinstance(data, bytes) else bytes(data))   # botocore takes bytes
        return
    parent, name = path.rsplit("/", 1)
    os.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/{TEMP_PREFIX}{uuid.uuid4().hex}-{name}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())   # the rename must not land before the bytes do (power loss)
    os.replace(tmp, path)


def json_bytes(obj, indent: int = 2, sort_keys: bool = True) -> bytes:
    """The one JSON format: sorted keys (the same data gives the same bytes), UTF-8 text, a final
    newline; values JSON has no type for (datetimes, paths) are written as str(). Records whose
    key order carries meaning (a comparison's arms in the order given) pass sort_keys=False."""
    return json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=False, default=str).encode() + b"\n"


def write_json(uri: str, obj, indent: int = 2, sort_keys: bool = True) -> None:
    write_atomic(uri, json_bytes(obj, indent, sort_keys))


def read_json(uri: str):
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as f:
        return json.loads(f.read())


def read_json_or_none(uri: str):
    """read_json, or None where the file does not exist (yet)."""
    return read_json(uri) if exists(uri) else None


def sha256_of(uri: str) -> str:
    """sha256 hex of a file's bytes, read in 1 MiB blocks (local path or URI)."""
    fs, path = filesystem(uri)
    digest = hashlib.sha256()
    with fs.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
