"""Audio-token generation: next-token prediction over discrete audio tokens, scored by the NLL in
bits per token. Counts ([NLL nats, predicted tokens, utterances]) add up across workers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.factory import GENERATION_MODELS
from pipeline.errors import UserError
from pipeline.split_reader import AUDIO_TOKENS

GEN_FIELDS = ("nll_nats", "tokens", "utterances")


def next_token_nll(logits: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
                   reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy (nats) of predicting token t+1 from tokens <= t, padding excluded: the mean,
    the sum ("sum") or each sequence's sum ("row")."""
    pred = logits[:, :-1].float()
    target = tokens[:, 1:]
    mask = torch.arange(target.shape[1], device=target.device)[None, :] < (lengths[:, None] - 1)
    nll = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), reduction="none")
    nll = nll.view_as(target) * mask
    if reduction == "sum":
        return nll.sum()
    if reduction == "row":     # each sequence's own sum
        return nll.sum(dim=1)
    return nll.sum() / mask.sum().clamp(min=1)


def generation_metrics(counts: torch.Tensor) -> dict:
    nats, tokens, n = (float(x) for x in counts)
    return {"nll_bits": nats / max(tokens, 1.0) / math.log(2), "tokens": int(tokens),
            "utterances": int(n)}


@torch.no_grad()
def generation_batch_counts(model, batch, device="cpu") -> torch.Tensor:
    tokens = batch["audio_tokens"].to(device)
    lengths = batch["audio_token_lengths"].to(device)
    logits = model(tokens)
    nats = next_token_nll(logits, tokens, lengths, reduction="sum")
    count = (lengths - 1).clamp(min=0).sum()
    return torch.tensor([float(nats), float(count), tokens.shape[0]], dtype=torch.float64)


class GenerationTask:
    """Discrete audio tokens -> next-token prediction; scored by NLL in bits per token."""

    name = "generation"
    dev_metric = "nll_bits"
    shown_metrics = ("nll_bits",)
    count_fields = GEN_FIELDS
    content = AUDIO_TOKENS
    models = GENERATION_MODELS
    evaluation_steps = {
        "quick": ("nll",),
        "long-form": ("nll", "nll_by_position"),
        "full": ("nll", "nll_by_position", "tokenizer_round_trip", "continuations", "efficiency"),
    }
    report_sections = ("audio_token_nll",)
    paired_metrics = {"nll_bits": ("bits", "tokens")}
    paired_sections = ("position_bins",)
    efficiency_unit = "tokens"            # efficiency inputs: audio tokens
    study_pooling = "nll_by_position"
    model_noun = "a generator model"

    def forward(self, model, x: torch.Tensor):
        """One unbatched input ([L] audio tokens) through the model."""
        return model(x[None])

    def check_data(self, train_manifest: dict) -> None:
        if not train_manifest.get("audio_tokenizer"):
            raise UserError("config key 'task': generation needs audio tokens; preprocess with "
                            "--audio-tokens mulaw|kmeans")

    def augmentation(self, spec_augment):
        return None  # SpecAugment masks spectrograms; tokens have none

    def loss(self, model, batch: dict, device, dtype, augment=None) -> torch.Tensor:
        tokens = batch["audio_tokens"].to(device)
        return next_token_nll(model(tokens), tokens, batch["audio_token_lengths"].to(device))

    def batch_counts(self, model, batch: dict, tokenizer, device="cpu",
                     dtype=torch.float32) -> torch.Tensor:
        return generation_batch_counts(model, batch, device)

    @torch.no_grad()
    def utterance_counts(self, model, batch: dict, tokenizer=None) -> list[torch.Tensor]:
        """Each utterance's counts in batch order; they sum to the batch's counts."""
        tokens, lengths = batch["audio_tokens"], batch["audio_token_lengths"]
        nats = next_token_nll(model(tokens), tokens, lengths, reduction="row")
        return [torch.tensor([float(n), float(max(int(k) - 1, 0)), 1.0], dtype=torch.float64)
                for n, k in zip(nats, lengths)]

    def dev_unit(self, utt_id: str, counts: torch.Tensor) -> dict:
        """One utterance's row of a study's per-utterance dev units (jobs/tuning/dev_units.py)."""
        return {"utt_id": utt_id, "bits": float(counts[0]) / math.log(2), "tokens": int(counts[1])}

    def errors_and_totals(self, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, fields] utterance counts -> the paired comparison's (NLL bits, predicted tokens)."""
        return counts[:, 0] / math.log(2), counts[:, 1]

    def metrics(self, counts: torch.Tensor) -> dict:
        return generation_metrics(counts)

    def tokenizer(self, manifest: dict, split_uri: str):
        return None

    def score(self, metrics: dict) -> float:
        return metrics[self.dev_metric]
