"""Small ASR models trained for real, in this process, by the training loop of `lact-audio train`
(jobs/training/loop.py: the same Trainer, loss, optimizer, lr schedule and checkpoint writer; no Ray),
on the training split of the session's toy corpus (tests/conftest.py `toy_corpus`: 6 utterances,
2 voices).

Rows: the toy split's utterances, joined at random. Trained on the 6 rows as they are (each starting
at t = 0), a small model learns them by heart from where they start: it transcribes each alone
perfectly and a recording that joins them as garbage after the first (seen here with LaCT at chunk 16,
64 and 2048, and with full attention). So every training row is one or two utterances in random
order, behind a random lead-in silence and with a random pause between them (features as
preprocessing made them, CMVN as the split's manifest gives it, transcripts joined by a space, as
`data.sessions` joins them). The longest possible row is `max_row_seconds`.

The models learn their training utterances, not English: they transcribe the toy corpus's own training
voices and sentences (tests/test_transcribe_longform.py measures how well), nothing else.
"""

from __future__ import annotations

import os
import random
import time

import numpy as np
import torch

TRAIN_SPLIT = "train-clean-100"
# Hidden 64, 2 layers; LaCT chunks of 16 encoder frames (0.64 s), so the fast weights are updated
# several times within each training row and within each streamed block of a recording.
MODEL = {"hidden_size": 64, "num_layers": 2, "num_attention_heads": 4, "num_lact_heads": 2,
         "chunk_size": 16, "window_size": 16, "inter_multi": 1.0, "use_muon": False,
         "use_momentum": False, "dropout": 0.0}
RECIPE = {"data.batch_size": 8, "optim.lr": 4e-3, "optim.warmup_steps": 20, "optim.min_lr_ratio": 0.1,
          "spec_augment.enabled": False, "train.torch_threads": 1, "train.seed": 0}
LEAD_IN = (0.0, 1.0)          # seconds of silence before the first utterance of a row
PAUSE = (0.2, 1.0)            # seconds of silence between two utterances of a row
FRAMES_PER_SECOND = 100       # the features' hop is 10 ms


class JoinedRows:
    """Batches of rows of one or two of the split's utterances, drawn at random (see the docstring)."""

    def __init__(self, split: str, batch_size: int, seed: int):
        from pipeline.features import AudioFeatureExtractor
        from pipeline.loading import LocalLoader
        from pipeline.normalizer import FeatureNormalizer
        from pipeline.sessions import separator_ids

        loader = LocalLoader(split, batch_size=1 << 16, shuffle=False)
        manifest = loader.manifest
        self.utterances = []        # (normalised features [n, mel], token ids, text, seconds)
        for b in loader.epoch(0):
            for i in range(len(b["utt_ids"])):
                self.utterances.append((b["features"][i, : int(b["feature_lengths"][i])],
                                        b["tokens"][i, : int(b["token_lengths"][i])].tolist(),
                                        b["texts"][i], float(b["durations"][i])))
        extractor = AudioFeatureExtractor.from_config(manifest["feature"])
        # normalised log-mel frames of digital silence, as the features of a silent recording are
        self.silence = torch.from_numpy(np.asarray(FeatureNormalizer.from_manifest(manifest)(
            extractor(np.zeros(16000, np.float32))), dtype=np.float32))[1:-1].mean(0)
        self.separator = separator_ids(manifest)
        self.batch_size = batch_size
        self.rng = random.Random(seed)

    @property
    def max_row_seconds(self) -> float:
        longest = sorted(u[3] for u in self.utterances)[-2:]
        return LEAD_IN[1] + PAUSE[1] + sum(longest)

    def _gap(self, bounds: tuple[float, float]) -> torch.Tensor:
        return self.silence.expand(int(self.rng.uniform(*bounds) * FRAMES_PER_SECOND), -1)

    def row(self) -> tuple[torch.Tensor, list[int], str]:
        picked = self.rng.sample(self.utterances, self.rng.choice((1, 2)))
        feats, tokens, texts = [self._gap(LEAD_IN)], [], []
        for i, (f, t, text, _) in enumerate(picked):
            if i:
                feats.append(self._gap(PAUSE))
                tokens += self.separator
            feats.append(f)
            tokens += t
            texts.append(text)
        return torch.cat(feats), tokens, " ".join(texts)

    def batch(self) -> dict:
        from pipeline.loading import pad_sequences

        rows = [self.row() for _ in range(self.batch_size)]
        lengths = torch.tensor([f.shape[0] for f, _, _ in rows])
        features = torch.zeros(len(rows), int(lengths.max()), rows[0][0].shape[1])
        for i, (f, _, _) in enumerate(rows):
            features[i, : f.shape[0]] = f
        tokens, token_lengths = pad_sequences([t for _, t, _ in rows])
        return {"features": features, "feature_lengths": lengths, "tokens": tokens,
                "token_lengths": token_lengths, "durations": lengths.float() / FRAMES_PER_SECOND,
                "texts": [text for _, _, text in rows], "utt_ids": [f"row-{i}" for i in range(len(rows))]}


def train_asr(features_root: str, checkpoint_dir: str, architecture: str, causal: bool, steps: int) -> dict:
    """Train on FEATURES/train-clean-100 for `steps` steps and write a checkpoint that names that split
    (its manifest gives `transcribe` the features, CMVN and tokenizer). Returns {"checkpoint",
    "seconds", "loss" (of the last step), "max_row_seconds"}."""
    from omegaconf import OmegaConf

    from jobs.training.config import load_config, nested
    from jobs.training.loop import Trainer, WorkerSpec
    from jobs.training.plan import model_config
    from pipeline.split_reader import open_split

    split = f"{features_root}/{TRAIN_SPLIT}"
    model = {f"model.config.{k}": v for k, v in {**MODEL, "lact_causal": causal}.items()}
    cfg = load_config(None, [f"data.root={features_root}", f"data.train={TRAIN_SPLIT}", f"data.dev={TRAIN_SPLIT}",
                             f"model.architecture={architecture}", f"train.max_steps={steps}"],
                      changes=[nested({**RECIPE, **model})])
    rows = JoinedRows(split, cfg.data.batch_size, cfg.train.seed)
    manifest = open_split(split).manifest
    threads = torch.get_num_threads()     # the Trainer sets train.torch_threads for the whole process
    started = time.perf_counter()
    try:
        trainer = Trainer(WorkerSpec(OmegaConf.to_object(cfg), model_config(cfg, manifest), dev_uri=split))
        out = {"loss": float("nan")}
        while trainer.step < steps:
            out = trainer.train_step(rows.batch())
        os.makedirs(checkpoint_dir, exist_ok=True)
        trainer.write_checkpoint(checkpoint_dir, {})
    finally:
        torch.set_num_threads(threads)
    return {"checkpoint": checkpoint_dir, "seconds": time.perf_counter() - started, "loss": out["loss"],
            "max_row_seconds": rows.max_row_seconds}
