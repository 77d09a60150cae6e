"""Dev/test metrics: CER and WER of greedy CTC decoding (jiwer) for ASR, next-token NLL in bits
per token for generation.

Metrics are computed from additive counts so that Ray Train workers can each evaluate a slice of
the data and sum their counts (all_reduce) before the ratio is taken.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import jiwer
import torch
import torch.nn.functional as F

ASR_FIELDS = ("char_errors", "char_total", "word_errors", "word_total", "utterances")
GEN_FIELDS = ("nll_nats", "tokens", "utterances")


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


def generation_metrics(counts: torch.Tensor) -> dict:
    nats, tokens, n = (float(x) for x in counts)
    return {"nll_bits": nats / max(tokens, 1.0) / math.log(2), "tokens": int(tokens),
            "utterances": int(n)}


@torch.no_grad()
def decode_batch(model: torch.nn.Module, batch: dict, tokenizer, device="cpu") -> list[str]:
    from models.decoding import ctc_greedy_decode

    logits, out_lengths = model(batch["features"].to(device), batch["feature_lengths"].to(device))
    ids = ctc_greedy_decode(logits.float().cpu(), out_lengths.cpu(), blank=0)
    return [tokenizer.decode(list(x)) for x in ids]


@torch.no_grad()
def asr_batch_counts(model, batch, tokenizer, device="cpu") -> torch.Tensor:
    return asr_counts(list(batch["texts"]), decode_batch(model, batch, tokenizer, device))


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


@torch.no_grad()
def utterance_counts(model, batch: dict, task_name: str, tokenizer=None) -> list[torch.Tensor]:
    """Each utterance's counts, in batch order; they sum to the batch's counts: ASR [char errors,
    chars, word errors, words, 1], generation [NLL nats, predicted tokens, 1]."""
    if task_name == "asr":
        hyps = decode_batch(model, batch, tokenizer)
        return [asr_counts([ref], [hyp]) for ref, hyp in zip(batch["texts"], hyps)]
    tokens, lengths = batch["audio_tokens"], batch["audio_token_lengths"]
    nats = next_token_nll(model(tokens), tokens, lengths, reduction="row")
    return [torch.tensor([float(n), float(max(int(k) - 1, 0)), 1.0], dtype=torch.float64)
            for n, k in zip(nats, lengths)]


@torch.no_grad()
def generation_batch_counts(model, batch, device="cpu") -> torch.Tensor:
    tokens = batch["audio_tokens"].to(device)
    lengths = batch["audio_token_lengths"].to(device)
    logits = model(tokens)
    nats = next_token_nll(logits, tokens, lengths, reduction="sum")
    count = (lengths - 1).clamp(min=0).sum()
    return torch.tensor([float(nats), float(count), tokens.shape[0]], dtype=torch.float64)


def evaluate(model, batches: Iterable[dict], task, tokenizer=None, device="cpu") -> dict:
    """Whole-split metrics in one process (`lact-audio evaluate`, the driver's test pass).

    `task` is a task object of jobs.training.tasks or its name ("asr", "generation")."""
    from jobs.training.tasks import task_named

    task = task_named(task)
    was_training = model.training
    model.eval()
    total = torch.zeros(len(task.count_fields), dtype=torch.float64)
    for batch in batches:
        total = total + task.batch_counts(model, batch, tokenizer, device)
    model.train(was_training)
    return task.metrics(total)


def evaluate_split(model, cfg, split_uri: str) -> dict:
    """A whole preprocessed split scored in one process with the config's task and batch size."""
    from jobs.training.tasks import task_named
    from pipeline.loading import LocalLoader

    task = task_named(cfg.task)
    loader = LocalLoader(split_uri, batch_size=cfg.data.eval_batch_size, task=task.name,
                         shuffle=False, max_audio_tokens=cfg.data.max_audio_tokens)
    return evaluate(model, loader.epoch(0), task, task.tokenizer(loader.manifest, split_uri))
