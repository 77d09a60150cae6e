"""The two model families as task objects: what each reads, its loss, its dev counts and score.

Everything that differs between ASR and audio-token generation lives here, so the driver, the
worker loop, evaluation and tuning ask `task.loss(...)`, `task.score(...)` instead of comparing
task names. `TASKS[name]` (or `task_named`) turns a config's `task:` string into its object.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from jobs.training import evaluation as ev
from pipeline.errors import UserError


def ctc_loss(logits: torch.Tensor, out_lengths: torch.Tensor, tokens: torch.Tensor,
             token_lengths: torch.Tensor) -> torch.Tensor:
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # [T, B, V]
    return F.ctc_loss(log_probs, tokens, out_lengths, token_lengths, blank=0,
                      reduction="mean", zero_infinity=True)


class ASRTask:
    """Log-mel features -> CTC over text tokens; scored by greedy-decoding CER (and WER)."""

    name = "asr"
    dev_metric = "cer"                    # lower is better; picks checkpoints and Tune trials
    shown_metrics = ("cer", "wer")        # what summaries and tables print
    count_fields = ev.ASR_FIELDS

    def check_data(self, train_manifest: dict) -> None:
        """ASR trains on the features and text tokens every preprocessed split has."""

    def augmentation(self, spec_augment):
        """SpecAugment on the training features, when the config enables it."""
        from jobs.training.augment import SpecAugment

        sa = spec_augment
        if not sa.enabled:
            return None
        return SpecAugment(sa.freq_masks, sa.freq_width, sa.time_masks, sa.time_width, sa.time_ratio)

    def loss(self, model, batch: dict, device, dtype, augment=None) -> torch.Tensor:
        feats = batch["features"]
        if augment is not None:
            feats = augment(feats)
        logits, out_lengths = model(feats.to(device, dtype), batch["feature_lengths"].to(device))
        return ctc_loss(logits, out_lengths, batch["tokens"].to(device),
                        batch["token_lengths"].to(device))

    def batch_counts(self, model, batch: dict, tokenizer, device="cpu",
                     dtype=torch.float32) -> torch.Tensor:
        batch = dict(batch, features=batch["features"].to(dtype))
        return ev.asr_batch_counts(model, batch, tokenizer, device)

    def metrics(self, counts: torch.Tensor) -> dict:
        return ev.asr_metrics(counts)

    def tokenizer(self, manifest: dict, split_uri: str):
        """Greedy CTC output is decoded back to text with the split's own tokenizer."""
        from pipeline.text_tokenizer import load_text_tokenizer

        return load_text_tokenizer(manifest, split_uri)

    def score(self, metrics: dict) -> float:
        return metrics[self.dev_metric]


class GenerationTask:
    """Discrete audio tokens -> next-token prediction; scored by NLL in bits per token."""

    name = "generation"
    dev_metric = "nll_bits"
    shown_metrics = ("nll_bits",)
    count_fields = ev.GEN_FIELDS

    def check_data(self, train_manifest: dict) -> None:
        if not train_manifest.get("audio_tokenizer"):
            raise UserError("config key 'task': generation needs audio tokens; preprocess with "
                            "--audio-tokens mulaw|kmeans")

    def augmentation(self, spec_augment):
        return None  # SpecAugment masks spectrograms; tokens have none

    def loss(self, model, batch: dict, device, dtype, augment=None) -> torch.Tensor:
        tokens = batch["audio_tokens"].to(device)
        return ev.next_token_nll(model(tokens), tokens, batch["audio_token_lengths"].to(device))

    def batch_counts(self, model, batch: dict, tokenizer, device="cpu",
                     dtype=torch.float32) -> torch.Tensor:
        return ev.generation_batch_counts(model, batch, device)

    def metrics(self, counts: torch.Tensor) -> dict:
        return ev.generation_metrics(counts)

    def tokenizer(self, manifest: dict, split_uri: str):
        return None

    def score(self, metrics: dict) -> float:
        return metrics[self.dev_metric]


TASKS = {task.name: task for task in (ASRTask(), GenerationTask())}


def task_named(name) -> ASRTask | GenerationTask:
    """The task object for a config's `task:` value (an object passes through)."""
    if not isinstance(name, str):
        return name
    if name not in TASKS:
        raise UserError(f"config key 'task': {name!r} is not one of {list(TASKS)}")
    return TASKS[name]
