"""A finished trial's best checkpoint scored utterance by utterance on its dev split: the units
the study's paired intervals resample (jobs/tuning/seeds.py). Written beside the trial's Train
run as dev_per_utterance.json."""

from __future__ import annotations

import os
import tempfile

import torch

DEV_UNITS_FILE = "dev_per_utterance.json"


@torch.no_grad()
def score_dev_units(plan, result) -> list[dict]:
    """[{utt_id, char_errors, char_total, word_errors, word_total}] for ASR, [{utt_id, bits,
    tokens}] for generators, over the dev utterances the trial was scored on."""
    from jobs.evaluation.accuracy import per_utterance, transcribe
    from jobs.evaluation.data import read_split
    from jobs.evaluation.suite import generation_quick
    from jobs.training.finish import best_checkpoint
    from jobs.training.model_io import load_checkpoint_dir

    cfg = plan.cfg
    checkpoint, _ = best_checkpoint(result)
    with tempfile.TemporaryDirectory(prefix="lact-dev-units-") as tmp:
        model, _ = load_checkpoint_dir(checkpoint.to_directory(os.path.join(tmp, "best")))
    asr = cfg.task == "asr"
    split = read_split(plan.splits["dev"].uri, features=asr, audio_tokens=not asr,
                       max_utterances=cfg.data.max_dev_utterances)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.train.torch_threads or 1)
    try:
        if not asr:
            return generation_quick(model, split)["per_utterance"]
        from pipeline.text_tokenizer import load_text_tokenizer

        tokenizer = load_text_tokenizer(split.manifest, split.uri)
        hyps = transcribe(model, [u.features for u in split.utterances], tokenizer,
                          batch_size=cfg.data.eval_batch_size)
        return per_utterance(split.utterances, hyps)
    finally:
        torch.set_num_threads(threads)
