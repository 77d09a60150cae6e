"""A finished trial's best checkpoint scored utterance by utterance on its dev split: the units
the study's paired intervals resample (jobs/tuning/seeds.py). Written beside the trial's Train
run as dev_per_utterance.json."""

from __future__ import annotations

import os
import tempfile

import torch

from jobs.runs.model_io import load_checkpoint_dir
from jobs.training.finish import best_checkpoint
from jobs.training.loop import dev_batches

DEV_UNITS_FILE = "dev_per_utterance.json"


@torch.no_grad()
def score_dev_units(plan, result) -> list[dict]:
    """[{utt_id, char_errors, char_total, word_errors, word_total}] for ASR, [{utt_id, bits,
    tokens}] for generators: the trial's dev metric split by utterance, i.e. the same dev batches
    (jobs/training/loop.dev_batches: the same utterances, generators' the same crops) and counts
    (the task's utterance_counts), so the units add up to the best checkpoint's dev figure."""
    cfg = plan.cfg
    checkpoint, _ = best_checkpoint(result)
    with tempfile.TemporaryDirectory(prefix="lact-dev-units-") as tmp:
        model, _ = load_checkpoint_dir(checkpoint.to_directory(os.path.join(tmp, "best")))
    model.eval()
    batches, tokenizer = dev_batches(plan.splits["dev"].uri, cfg.data, plan.task)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.train.torch_threads or 1)
    units = []
    try:
        for batch in batches:
            counts = plan.task.utterance_counts(model, batch, tokenizer)
            units += [plan.task.dev_unit(utt_id, c) for utt_id, c in zip(batch["utt_ids"], counts)]
    finally:
        torch.set_num_threads(threads)
    return units
