"""Per-utterance scores of one model on a split, for the paired comparison of champion and
challenger: for each utterance (errors, total) in the split's fixed order, with the project's own
decoding and metrics (jobs/tasks/: greedy CTC + jiwer for ASR, next-token NLL for
generation). The split-level metrics are the sums of the same counts, so they equal
evaluate_split's."""

from __future__ import annotations

import torch

from jobs.tasks import task_named
from jobs.tasks.scoring import split_loader


def utterance_scores(model, cfg, split_uri: str) -> dict:
    """{"utt_ids", "errors", "totals", "metrics"}: errors/totals are char edits/reference chars (ASR)
    or NLL nats/predicted tokens (generation), one pair per utterance."""
    task = task_named(cfg.task)
    loader = split_loader(cfg, split_uri, task)
    tokenizer = task.tokenizer(loader.manifest, split_uri)
    model.eval()
    utt_ids, rows = [], []
    for batch in loader.epoch(0):
        utt_ids += list(batch["utt_ids"])
        rows += task.utterance_counts(model, batch, tokenizer)
    counts = torch.stack(rows) if rows else torch.zeros((0, len(task.count_fields)), dtype=torch.float64)
    metrics = task.metrics(counts.sum(0) if rows else torch.zeros(len(task.count_fields), dtype=torch.float64))
    errors, totals = task.errors_and_totals(counts)
    return {"utt_ids": utt_ids, "errors": errors.tolist(), "totals": totals.tolist(), "metrics": metrics}
