"""A finished trial's best checkpoint scored utterance by utterance on its dev split: the units
the study's paired intervals resample (jobs/tuning/seeds.py). Written beside the trial's Train
run as dev_per_utterance.json."""

from __future__ import annotations

import math
import os
import tempfile

import torch

DEV_UNITS_FILE = "dev_per_utterance.json"
ASR_UNITS = ("char_errors", "char_total", "word_errors", "word_total")   # utterance_counts' first four


@torch.no_grad()
def score_dev_units(plan, result) -> list[dict]:
    """[{utt_id, char_errors, char_total, word_errors, word_total}] for ASR, [{utt_id, bits,
    tokens}] for generators: the trial's dev metric split by utterance, i.e. the same dev batches
    (jobs/training/loop.dev_batches: the same utterances, generators' the same crops) and counts
    (jobs/training/evaluation.utterance_counts), so the units add up to the best checkpoint's dev figure."""
    from jobs.training.evaluation import utterance_counts
    from jobs.training.finish import best_checkpoint
    from jobs.training.loop import dev_batches
    from jobs.training.model_io import load_checkpoint_dir

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
            for utt_id, c in zip(batch["utt_ids"], utterance_counts(model, batch, cfg.task, tokenizer)):
                units.append({"utt_id": utt_id, **dict(zip(ASR_UNITS, map(int, c[:4])))} if cfg.task == "asr"
                             else {"utt_id": utt_id, "bits": float(c[0]) / math.log(2), "tokens": int(c[1])})
    finally:
        torch.set_num_threads(threads)
    return units
