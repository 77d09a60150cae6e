"""Load a trained model from a checkpoint URI (local or s3://) or an MLflow model URI."""

from __future__ import annotations

import json
import os
import tempfile

import torch

from jobs.runs import checkpoint as ckpt
from jobs.runs import tracking
from jobs.tasks import task_named
from models import LaCTAudioConfig, build_model
from pipeline import uri as uris
from pipeline.errors import UserError


def build_from_meta(meta: dict) -> torch.nn.Module:
    return build_model(task_named(meta["task"]).models, meta["architecture"],
                       LaCTAudioConfig.from_dict(meta["model_config"]))


def load_checkpoint_dir(directory: str) -> tuple[torch.nn.Module, dict]:
    """A local checkpoint folder (verified against its integrity list) -> (model, meta)."""
    meta = ckpt.verify(directory)
    model = build_from_meta(meta)
    model.load_state_dict(torch.load(os.path.join(directory, ckpt.MODEL_FILE), map_location="cpu"))
    return model.eval(), meta


def load_model(model_uri: str) -> tuple[torch.nn.Module, dict]:
    """MODEL for `lact-audio evaluate`: models:/name@alias, runs:/..., or a checkpoint URI."""
    if model_uri.startswith(("models:/", "runs:/", "mlflow-artifacts:/")):
        try:
            model, meta = tracking.load_logged_model(model_uri)
        except Exception as exc:
            raise UserError(f"cannot load model {model_uri}: {str(exc).splitlines()[0]}") from exc
        if "task" not in meta:
            raise UserError(f"model {model_uri} was not logged by lact-audio train (no task metadata)")
        return model.eval(), meta
    model_uri = uris.absolute(model_uri)
    uris.require_exists(model_uri, "checkpoint")
    fs, path = uris.filesystem(model_uri)
    if not fs.exists(f"{path.rstrip('/')}/{ckpt.INDEX_FILE}"):
        raise UserError(f"{model_uri} is not a lact-audio checkpoint (no {ckpt.INDEX_FILE})")
    if not uris.is_remote(model_uri):
        return load_checkpoint_dir(path)
    with tempfile.TemporaryDirectory(prefix="lact-model-") as tmp:
        for name in fs.ls(path, detail=False):
            base = name.rstrip("/").rsplit("/", 1)[-1]
            if base in (ckpt.MODEL_FILE, ckpt.META_FILE, ckpt.INDEX_FILE):
                fs.get(name, os.path.join(tmp, base))
        with open(os.path.join(tmp, ckpt.INDEX_FILE)) as f:  # only the files the model needs
            index = json.load(f)
        with open(os.path.join(tmp, ckpt.INDEX_FILE), "w") as f:
            json.dump({k: v for k, v in index.items() if k in (ckpt.MODEL_FILE, ckpt.META_FILE)}, f)
        return load_checkpoint_dir(tmp)
