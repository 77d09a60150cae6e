"""A whole preprocessed split scored with a task in one process (`lact-audio evaluate`, the
training driver's test pass); Ray Train workers sum the same counts instead."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from jobs.tasks import task_named
from pipeline.loading import LocalLoader


def evaluate(model, batches: Iterable[dict], task, tokenizer=None, device="cpu") -> dict:
    """Metrics over `batches`; `task` is a task object or its name."""
    task = task_named(task)
    was_training = model.training
    model.eval()
    total = torch.zeros(len(task.count_fields), dtype=torch.float64)
    for batch in batches:
        total = total + task.batch_counts(model, batch, tokenizer, device)
    model.train(was_training)
    return task.metrics(total)


def split_loader(cfg, split_uri: str, task) -> LocalLoader:
    """A split's batches in their fixed order, as the config's evaluation reads them."""
    return LocalLoader(split_uri, batch_size=cfg.data.eval_batch_size, content=task.content,
                       shuffle=False, max_audio_tokens=cfg.data.max_audio_tokens)


def evaluate_split(model, cfg, split_uri: str) -> dict:
    """A whole preprocessed split scored with the config's task and batch size."""
    task = task_named(cfg.task)
    loader = split_loader(cfg, split_uri, task)
    return evaluate(model, loader.epoch(0), task, task.tokenizer(loader.manifest, split_uri))
