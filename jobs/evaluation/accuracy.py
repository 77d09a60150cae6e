"""CER and WER (jiwer) of an ASR model on a list of utterances: overall, per speaker and per
language, from greedy or beam (CTC prefix beam search) decoding.

Scores are kept as additive counts (errors and reference lengths), so per-speaker figures sum
to the overall ones and any group can be scored by adding its utterances' counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from jobs.evaluation.data import EvalUtterance
from jobs.tasks.asr import ASR_FIELDS, asr_counts, asr_metrics
from models.decoding import ctc_greedy_decode, ctc_prefix_beam_search

GREEDY = "greedy"
BEAM = "beam"


def pad_features(features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[T_i, mel] tensors -> [B, max T, mel] (zeros where padded), lengths [B]."""
    lengths = torch.tensor([f.shape[0] for f in features], dtype=torch.long)
    out = features[0].new_zeros(len(features), int(lengths.max()), features[0].shape[1])
    for i, f in enumerate(features):
        out[i, : f.shape[0]] = f
    return out, lengths


def decode_logits(logits: torch.Tensor, lengths: torch.Tensor, tokenizer, decoding: str = GREEDY,
                  beam_size: int = 8) -> list[str]:
    logits, lengths = logits.float().cpu(), lengths.cpu()
    if decoding == GREEDY:
        ids = ctc_greedy_decode(logits, lengths, blank=0)
    elif decoding == BEAM:
        ids = ctc_prefix_beam_search(logits, lengths, beam_size=beam_size, blank=0)
    else:
        raise ValueError(f"unknown decoding {decoding!r}")
    return [tokenizer.decode(list(x)) for x in ids]


@torch.no_grad()
def transcribe(model: torch.nn.Module, features: Sequence[torch.Tensor], tokenizer,
               decoding: str = GREEDY, batch_size: int = 16, beam_size: int = 8,
               device: str = "cpu", dtype: torch.dtype = torch.float32) -> list[str]:
    """Hypotheses for whole utterances [T, mel], batched by length, returned in input order."""
    order = sorted(range(len(features)), key=lambda i: features[i].shape[0])
    hyps: list[str] = [""] * len(features)
    for start in range(0, len(order), batch_size):
        index = order[start: start + batch_size]
        batch, lengths = pad_features([features[i] for i in index])
        logits, out_lengths = model(batch.to(device, dtype), lengths.to(device))
        for i, text in zip(index, decode_logits(logits, out_lengths, tokenizer, decoding, beam_size)):
            hyps[i] = text
    return hyps


def scores(refs: Sequence[str], hyps: Sequence[str]) -> dict:
    """{cer, wer, utterances} plus the counts they come from."""
    counts = asr_counts(list(refs), list(hyps))
    out = asr_metrics(counts)
    out.pop("greedy", None)
    out.update({name: int(v) for name, v in zip(ASR_FIELDS, counts.tolist()) if name != "utterances"})
    return out


def grouped_scores(utterances: Sequence[EvalUtterance], hyps: Sequence[str],
                   key: Callable[[EvalUtterance], str]) -> dict[str, dict]:
    """scores() per group of utterances (e.g. per speaker), groups in sorted order."""
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for utt, hyp in zip(utterances, hyps):
        refs, hs = groups.setdefault(key(utt), ([], []))
        refs.append(utt.text)
        hs.append(hyp)
    return {name: scores(*groups[name]) for name in sorted(groups)}


def per_utterance(utterances: Sequence[EvalUtterance], hyps: Sequence[str]) -> list[dict]:
    """Each utterance's error counts and reference lengths: the units of a paired comparison."""
    rows = []
    for utt, hyp in zip(utterances, hyps):
        s = scores([utt.text], [hyp])
        rows.append({"utt_id": utt.utt_id, **{k: s[k] for k in ("char_errors", "char_total",
                                                                   "word_errors", "word_total")}})
    return rows


def accuracy_report(model, utterances: Sequence[EvalUtterance], tokenizer, beam: bool = True,
                    beam_size: int = 8, batch_size: int = 16) -> dict:
    """The quick suite: greedy overall/per speaker/per language, and beam overall."""
    refs = [u.text for u in utterances]
    features = [u.features for u in utterances]
    greedy = transcribe(model, features, tokenizer, GREEDY, batch_size)
    out = scores(refs, greedy)
    out["decoding"] = GREEDY
    out["per_speaker"] = grouped_scores(utterances, greedy, lambda u: u.speaker)
    out["per_language"] = grouped_scores(utterances, greedy, lambda u: u.language)
    if beam:
        beamed = transcribe(model, features, tokenizer, BEAM, batch_size, beam_size)
        out["beam"] = {**scores(refs, beamed), "beam_size": beam_size}
    out["per_utterance"] = per_utterance(utterances, greedy)
    out["examples"] = [{"utt_id": u.utt_id, "ref": u.text, "hyp": h}
                       for u, h in list(zip(utterances, greedy))[:5]]
    return out
