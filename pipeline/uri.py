"""Every path is a URI: a local path or s3://bucket/prefix, opened through fsspec.

A custom S3 endpoint comes from the standard AWS_ENDPOINT_URL variable (moto in tests, MinIO or
Ceph on a cluster).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec

from pipeline.errors import UserError


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for a URI and the path inside it."""
    options = {}
    if uri.startswith("s3://") and os.environ.get("AWS_ENDPOINT_URL"):
        options["client_kwargs"] = {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}
    if not is_remote(uri):
        uri = str(Path(uri.removeprefix("file://")).expanduser().absolute())
    fs, path = fsspec.core.url_to_fs(uri, **options)
    return fs, path


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def absolute(uri: str) -> str:
    """Local paths become absolute (Ray workers run in another cwd); remote URIs are unchanged."""
    if is_remote(uri):
        return uri
    return str(Path(uri.removeprefix("file://")).expanduser().absolute())


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def require_exists(uri: str, what: str = "input") -> None:
    try:
        found = exists(uri)
    except Exception as exc:  # unreachable endpoint, bad credentials, malformed URI
        raise UserError(f"cannot reach {what} {uri}: {exc}") from exc
    if not found:
        raise UserError(f"{what} does not exist: {uri}")


def ensure_writable(uri: str, what: str = "output") -> None:
    """Fail at start, with a clear message, when a URI cannot be written (not after an hour)."""
    fs, path = filesystem(uri)
    probe = f"{path.rstrip('/')}/.write-probe-{uuid.uuid4().hex}"
    try:
        fs.makedirs(path, exist_ok=True)
        with fs.open(probe, "wb") as f:
            f.write(b"ok")
        fs.rm(probe)
    except Exception as exc:
        raise UserError(f"cannot write {what} {uri}: {type(exc).__name__}: {exc}") from exc


def work_home() -> str:
    """Data and runs live under one work directory: $LACT_AUDIO_HOME, default ./runs."""
    return absolute(os.environ.get("LACT_AUDIO_HOME", "runs"))
