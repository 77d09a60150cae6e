"""ASR: log-mel features -> CTC over text tokens, scored by the CER and WER of greedy decoding.

Metrics come from additive counts ([char errors, chars, word errors, words, utterances]) so that
Ray Train workers can each score a slice of the data and sum their counts before the ratio.
"""

from __future__ import annotations

import jiwer
import torch
import torch.nn.functional as F

from jobs.tasks.spec_augment import SpecAugment
from models.decoding import ctc_greedy_decode
from models.factory import ASR_MODELS
from pipeline.split_reader import FEATURES_AND_TEXT
from pipeline.text_tokenizer import load_text_tokenizer

ASR_FIELDS = ("char_errors", "char_total", "word_errors", "word_total", "utterances")
PAIRED_METRICS = {"cer": ("char_errors", "char_total"), "wer": ("word_errors", "word_total")}


def ctc_loss(logits: torch.Tensor, out_lengths: torch.Tensor, tokens: torch.Tensor,
             token_lengths: torch.Tensor) -> torch.Tensor:
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # [T, B, V]
    return F.ctc_loss(log_probs, tokens, out_lengths, token_lengths, blank=0,
                      reduction="mean", zero_infinity=True)


def asr_counts(refs: list[str], hyps: list[str]) -> torch.Tensor:
    """[char errors, chars, word errors, words, utterances] of hypotheses against references."""
    pairs = [(r, h) for r, h in zip(refs, hyps) if r.strip()]  # jiwer rejects empty references
    if not pairs:
        return torch.zeros(len(ASR_FIELDS), dtype=torch.float64)
    r, h = [p[0] for p in pairs], [p[1] for p in pairs]
    w = jiwer.process_words(r, h)
    c = jiwer.process_characters(r, h)
    return torch.tensor([
        c.substitutions + c.deletions + c.insertions, c.substitutions + c.deletions + c.hits,
        w.substitutions + w.deletions + w.insertions, w.substitutions + w.deletions + w.hits,
        len(pairs)], dtype=torch.float64)


def asr_metrics(counts: torch.Tensor) -> dict:
    ce, ct, we, wt, n = (float(x) for x in counts)
    return {"cer": ce / max(ct, 1.0), "wer": we / max(wt, 1.0), "utterances": int(n),
            "greedy": True}


@torch.no_grad()
def decode_batch(model: torch.nn.Module, batch: dict, tokenizer, device="cpu") -> list[str]:
    logits, out_lengths = model(batch["features"].to(device), batch["feature_lengths"].to(device))
    ids = ctc_greedy_decode(logits.float().cpu(), out_lengths.cpu(), blank=0)
    return [tokenizer.decode(list(x)) for x in ids]


@torch.no_grad()
def asr_batch_counts(model, batch, tokenizer, device="cpu") -> torch.Tensor:
    return asr_counts(list(batch["texts"]), decode_batch(model, batch, tokenizer, device))


class ASRTask:
    """Log-mel features -> CTC over text tokens; scored by greedy-decoding CER (and WER)."""

    name = "asr"
    dev_metric = "cer"                    # lower is better; picks checkpoints and Tune trials
    shown_metrics = ("cer", "wer")        # what summaries and tables print
    count_fields = ASR_FIELDS
    content = FEATURES_AND_TEXT           # what its batches carry (pipeline.split_reader)
    models = ASR_MODELS                   # its LaCT and full-attention classes (models/factory.py)
    # `lact-audio evaluate`: the steps each suite runs (jobs/evaluation/steps.py), the report's
    # sections (jobs/evaluation/report.py) and the paired comparisons (jobs/evaluation/comparison.py)
    evaluation_steps = {
        "quick": ("accuracy",),
        "long-form": ("accuracy", "long_form"),
        "full": ("accuracy", "long_form", "streaming", "adaptation", "fast_weight_ablation",
                 "quantized", "efficiency"),
    }
    report_sections = ("recognition", "long_form", "streaming", "adaptation", "fast_weight_ablation",
                       "quantized")
    paired_metrics = PAIRED_METRICS       # metric -> (errors, total) of a per-utterance row
    paired_sections = ("long_form", "sessions")
    efficiency_unit = "seconds"           # efficiency inputs: seconds of features
    study_pooling = "long_form"           # what `evaluate --study` pools across seeds
    model_noun = "an ASR model"           # what a command needing this task asks for

    def forward(self, model, x: torch.Tensor):
        """One unbatched input ([T, n_mels] features) through the model."""
        return model(x[None], torch.tensor([x.shape[0]]))

    def check_data(self, train_manifest: dict) -> None:
        """ASR trains on the features and text tokens every preprocessed split has."""

    def augmentation(self, spec_augment):
        """SpecAugment on the training features, when the config enables it."""
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
        return asr_batch_counts(model, batch, tokenizer, device)

    @torch.no_grad()
    def utterance_counts(self, model, batch: dict, tokenizer=None) -> list[torch.Tensor]:
        """Each utterance's counts in batch order; they sum to the batch's counts."""
        hyps = decode_batch(model, batch, tokenizer)
        return [asr_counts([ref], [hyp]) for ref, hyp in zip(batch["texts"], hyps)]

    def dev_unit(self, utt_id: str, counts: torch.Tensor) -> dict:
        """One utterance's row of a study's per-utterance dev units (jobs/tuning/dev_units.py)."""
        return {"utt_id": utt_id, **dict(zip(ASR_FIELDS[:4], map(int, counts[:4])))}

    def errors_and_totals(self, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, fields] utterance counts -> the paired comparison's (char edits, reference chars)."""
        return counts[:, 0], counts[:, 1]

    def metrics(self, counts: torch.Tensor) -> dict:
        return asr_metrics(counts)

    def tokenizer(self, manifest: dict, split_uri: str):
        """Greedy CTC output is decoded back to text with the split's own tokenizer."""
        return load_text_tokenizer(manifest, split_uri)

    def score(self, metrics: dict) -> float:
        return metrics[self.dev_metric]
