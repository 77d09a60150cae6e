"""Where a training run lives: its folder under the storage URI, the run file that lets
`--resume` find it again (JSON files go through pipeline.files.write_json)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from pipeline import uri as uris
from pipeline.errors import UserError

RUN_FILE = "lact_run.json"   # MLflow run id + resolved config, written when a run starts


def pick_run_dir(storage: str, name: str, resume: bool) -> tuple[str, dict | None]:
    """A fresh `<name>-<time>-<id>`, or with resume the newest earlier run of that name."""
    if resume:
        fs, path = uris.filesystem(storage)
        fs.invalidate_cache()
        candidates = []
        for entry in fs.ls(path, detail=False) if fs.exists(path) else []:
            base = entry.rstrip("/").rsplit("/", 1)[-1]
            if base.startswith(f"{name}-") and fs.exists(f"{entry.rstrip('/')}/{RUN_FILE}"):
                candidates.append(base)
        if not candidates:
            raise UserError(f"--resume: no earlier run named {name!r} under {storage}")
        run_name = sorted(candidates)[-1]
        return run_name, read_run_file(uris.join(storage, run_name))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{uuid.uuid4().hex[:4]}", None


def read_run_file(run_uri: str) -> dict | None:
    """The run file of an earlier run in this folder, or None for a folder never started."""
    fs, path = uris.filesystem(uris.join(run_uri, RUN_FILE))
    if not fs.exists(path):
        return None
    with fs.open(path) as f:
        return json.load(f)



def checkpoint_uri(checkpoint, storage: str) -> str | None:
    """A Ray checkpoint's location as a URI (Ray gives object-store paths without the scheme)."""
    if checkpoint is None:
        return None
    if uris.is_remote(storage) and "://" not in checkpoint.path:
        return f"{storage.split('://', 1)[0]}://{checkpoint.path}"
    return checkpoint.path
