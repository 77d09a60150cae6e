"""A finished trial's best checkpoint scored utterance by utterance on its dev split: the units
the study's paired intervals resample (jobs/tuning/seeds.py). Written beside the trial's Train
run as dev_per_utterance.json."""

from __future__ import annotations

import math
import os
import tempfile

import torch
import torch.nn.functional as F

DEV_UNITS_FILE = "dev_per_utterance.json"
COUNT_FIELDS = ("char_errors", "char_total", "word_errors", "word_total")


@torch.no_grad()
def score_dev_units(plan, result) -> list[dict]:
    """[{utt_id, char_errors, char_total, word_errors, word_total}] for ASR, [{utt_id, bits,
    tokens}] for generators: the trial's dev metric split by utterance, i.e. the same dev batches
    (jobs/training/loop.dev_batches: the same utterances, generators' the same crops), so the
    units add up to the dev figure of the best checkpoint."""
    from jobs.evaluation.accuracy import scores
    from jobs.training.evaluation import decode_batch
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
    rows = []
    try:
        for batch in batches:
            if cfg.task == "asr":
                for utt_id, text, hyp in zip(batch["utt_ids"], batch["texts"], decode_batch(model, batch, tokenizer)):
                    s = scores([text], [hyp])
                    rows.append({"utt_id": utt_id, **{k: s[k] for k in COUNT_FIELDS}})
            else:
                rows += _generation_units(model, batch)
    finally:
        torch.set_num_threads(threads)
    return rows


def _generation_units(model, batch: dict) -> list[dict]:
    """Each padded row's next-token bits and predicted tokens (padding excluded)."""
    tokens, lengths = batch["audio_tokens"], batch["audio_token_lengths"]
    logits = model(tokens)[:, :-1].float()
    nats = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
    predicted = (lengths - 1).clamp(min=0)
    mask = torch.arange(nats.shape[1])[None, :] < predicted[:, None]
    bits = (nats * mask).sum(dim=1) / math.log(2)
    return [{"utt_id": u, "bits": float(b), "tokens": int(n)} for u, b, n in zip(batch["utt_ids"], bits, predicted)]
