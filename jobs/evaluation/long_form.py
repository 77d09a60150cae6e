"""Long-form recognition: every recording of every set (jobs/evaluation/recordings.py) decoded
two ways by each model, and the context gain between them.

- one pass: the whole recording as one input. A block-causal model streams it with its state
  (the same output as its offline forward, in bounded memory); a bidirectional or full-attention
  model reads it in one forward, since that is the condition being tested.
- segmented: utterance by utterance, the hypotheses joined with a space; the reference.

Each recording keeps its error counts both ways (comparison.py pairs models over recordings);
each set gets its CER both ways and the context gain with its paired-bootstrap interval
(context_gain.py). Every model is scored on the same recordings. A recording a model cannot
decode in one pass (out of memory, past the time limit) is a result with that status, and the
recordings at least as long are not tried again.
"""

from __future__ import annotations

import torch

from jobs.evaluation.accuracy import GREEDY, decode_logits, scores, transcribe
from jobs.evaluation.context_gain import context_gain
from jobs.evaluation.limits import run_limited
from jobs.evaluation.recordings import Recording, RecordingSet
from jobs.evaluation.streaming import can_stream

DEFAULT_SECONDS = (30.0, 120.0, 300.0)   # and the whole chapters (recordings.LONGEST)
DEFAULT_RECORDINGS = 30                  # per length, at most
DEFAULT_SPEAKERS = 10                    # wanted per length (a shortfall is reported)
COUNT_FIELDS = ("char_errors", "char_total", "word_errors", "word_total")


@torch.no_grad()
def decode_one_pass(model, features: torch.Tensor, tokenizer, chunk_frames: int, stream: bool) -> str:
    """stream: feed a block-causal model chunk by chunk with its state; else one forward."""
    if stream:
        logits = model.transcribe_streaming(features[None], chunk_frames=chunk_frames)
        lengths = torch.tensor([logits.shape[1]])
    else:
        logits, lengths = model(features[None], torch.tensor([features.shape[0]]))
    return decode_logits(logits, lengths, tokenizer)[0]


def counts(reference: str, hypothesis: str) -> dict:
    s = scores([reference], [hypothesis])
    return {"cer": s["cer"], "wer": s["wer"], **{k: s[k] for k in COUNT_FIELDS}}


def segmented_hypotheses(model, sets: list[RecordingSet], tokenizer, batch_size: int) -> dict[str, str]:
    """utt_id -> hypothesis of every utterance in any recording, each decoded alone once."""
    utts = {u.utt_id: u for s in sets for r in s.recordings for u in r.utterances}
    ids = sorted(utts)
    hyps = transcribe(model, [utts[i].features for i in ids], tokenizer, GREEDY, batch_size)
    return dict(zip(ids, hyps))


def recording_row(rec: Recording, recording_set: RecordingSet) -> dict:
    return {"id": rec.id, "length": rec.length, "target_seconds": recording_set.target_seconds,
            "speaker": rec.speaker, "chapter": rec.chapter, "utterances": len(rec.utterances),
            "seconds": round(recording_set.seconds(rec), 2), "cer": None, "wer": None}


def decode_recordings(model, sets: list[RecordingSet], tokenizer, chunk_frames: int,
                      time_limit: float | None, batch_size: int = 16, stream: bool | None = None) -> list[dict]:
    """One row per recording (shortest first): one-pass counts at the top level, the segmented
    reference's under `segmented`, the decode mode and time, or the status that stopped it.
    stream None: stream the block-causal models, one forward for the others."""
    alone = segmented_hypotheses(model, sets, tokenizer, batch_size)
    stream = can_stream(model) if stream is None else stream
    mode = "streamed" if stream else "one_forward"
    pending = sorted(((s, r) for s in sets for r in s.recordings), key=lambda p: (p[0].seconds(p[1]), p[1].id))
    rows, failed = [], None
    for recording_set, rec in pending:
        row = recording_row(rec, recording_set)
        row["segmented"] = counts(rec.text, " ".join(h for h in (alone[u.utt_id].strip() for u in rec.utterances) if h))
        if failed is not None and row["seconds"] >= failed["seconds"]:
            # A longer recording costs more: do not spend the time limit again to fail again.
            row.update(status=failed["status"], decode_seconds=0.0,
                       detail=f"not run: the {failed['seconds']:.0f} s recording {failed['id']} already "
                              f"ended with {failed['status']}")
            rows.append(row)
            continue
        outcome = run_limited(lambda rec=rec: decode_one_pass(model, rec.features(), tokenizer, chunk_frames, stream),
                              time_limit)
        row.update(status=outcome.status, mode=mode, decode_seconds=round(outcome.seconds, 3))
        if outcome.ok:
            row.update(counts(rec.text, outcome.value), rtf=outcome.seconds / max(row["seconds"], 1e-9))
        else:
            row["detail"] = outcome.detail
            failed = row
        rows.append(row)
    return rows


def pooled(rows: list[dict], key=lambda r: r) -> dict | None:
    """Corpus CER/WER over the recordings decoded in one pass (ratio of summed counts); key picks
    the segmented counts instead, over the same recordings."""
    ok = [key(r) for r in rows if r.get("status") == "ok"]
    if not ok:
        return None
    total = {k: sum(r[k] for r in ok) for k in COUNT_FIELDS}
    return {"cer": total["char_errors"] / max(total["char_total"], 1),
            "wer": total["word_errors"] / max(total["word_total"], 1), **total}


def length_summaries(sets: list[RecordingSet], rows: list[dict], seed: int, resamples: int) -> list[dict]:
    """Per set: what it holds, CER/WER one pass and segmented, the context gain with its interval."""
    out = []
    for recording_set in sets:
        mine = [r for r in rows if r["length"] == recording_set.length]
        failed = [r for r in mine if r["status"] != "ok"]
        out.append({**recording_set.summary(), "decoded": len(mine) - len(failed),
                    "failed": {s: sum(r["status"] == s for r in failed) for s in sorted({r["status"] for r in failed})},
                    "one_pass": pooled(mine), "segmented": pooled(mine, key=lambda r: r["segmented"]),
                    "context_gain": context_gain(mine, "cer", seed, resamples)})
    return out


def evaluate_long_form(model, sets: list[RecordingSet], tokenizer, chunk_frames: int,
                       time_limit: float | None, seed: int = 0, resamples: int = 10000,
                       batch_size: int = 16) -> dict:
    """{"lengths": [per set summary], "recordings": [per recording row], "context_gain": pooled}."""
    rows = decode_recordings(model, sets, tokenizer, chunk_frames, time_limit, batch_size)
    return {"mode": "streamed" if can_stream(model) else "one_forward",
            "lengths": length_summaries(sets, rows, seed, resamples),
            "context_gain": context_gain(rows, "cer", seed, resamples),
            "recordings": rows}
