"""Generator NLL by position on long single-speaker sequences: where a memory should show.

Sequences: each chapter's audio tokens joined in recording order (one voice, one session; see
recordings.chapters), cut into consecutive pieces of the last bin edge; a shorter leftover is
kept when it covers the first bin. Up to `count` sequences, round-robin over the chapters.

Each sequence is scored in one forward pass; the token at position p (p >= 1) is predicted
from the p tokens before it. A bin [lo, hi) holds positions lo..hi-1 (position 0 is never
predicted), and a sequence counts in a bin only when it covers the whole bin, so each bin's
figure comes from the same positions of every sequence in it. Each sequence keeps its bits and
tokens per bin (the units of comparison.py's paired intervals). A bin no sequence covers is
omitted, and the result says so and why.
"""

from __future__ import annotations

import torch

from jobs.evaluation.data import EvalSplit
from jobs.evaluation.generation_quality import position_nll_bits
from jobs.evaluation.limits import run_limited
from jobs.evaluation.paired_bootstrap import paired_bootstrap
from jobs.evaluation.recordings import chapters, round_robin
from pipeline.errors import UserError

DEFAULT_EDGES = (0, 512, 1024, 2048, 4096, 8192, 16384)
DEFAULT_SEQUENCES = 30


def check_edges(edges) -> list[int]:
    edges = [int(e) for e in edges]
    if len(edges) < 2 or edges[0] != 0 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise UserError(f"--nll-position-bins needs increasing edges from 0, at least two, got {edges}")
    return edges


def tokens_label(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def bin_label(lo: int, hi: int) -> str:
    return f"{tokens_label(lo)}-{tokens_label(hi)}"


def long_sequences(split: EvalSplit, edges: list[int], count: int) -> list[dict]:
    """[{id, speaker, chapter, tokens: LongTensor}] of at most edges[-1] tokens, at least edges[1]."""
    longest, shortest = edges[-1], edges[1]
    pieces = {}
    for chapter, utts in chapters(split).items():
        joined = torch.cat([u.audio_tokens for u in utts])
        cuts = [joined[i: i + longest] for i in range(0, joined.shape[0], longest)]
        cuts = [c for c in cuts if c.shape[0] >= shortest]
        if cuts:
            pieces[chapter] = [(utts[0].speaker, c) for c in cuts]
    return [{"id": f"{chapter}/{i}", "speaker": speaker, "chapter": chapter, "tokens": tokens}
            for chapter, i, (speaker, tokens) in round_robin(pieces, count)]


def sequence_bins(bits: torch.Tensor, edges: list[int]) -> dict[str, dict]:
    """bits [L-1] (entry i predicts position i+1) -> {label: {bits, tokens}} of the bins covered."""
    length = bits.shape[0] + 1
    out = {}
    for lo, hi in zip(edges, edges[1:]):
        if length < hi:
            break
        part = bits[max(lo, 1) - 1: hi - 1]      # positions max(lo,1)..hi-1
        out[bin_label(lo, hi)] = {"bits": float(part.sum()), "tokens": int(part.numel())}
    return out


def nll_by_position(model, split: EvalSplit, edges, count: int, time_limit: float | None,
                    seed: int = 0, resamples: int = 10000) -> dict:
    """{status, edges, bins: [{label, lo, hi, sequences, tokens, nll_bits, low, high}], omitted: [...],
    sequences: [{id, speaker, chapter, length, status, bins}]}; low-high: the 95 % bootstrap
    interval of the bin's bits/token over its sequences."""
    edges = check_edges(edges)
    if count < 1:
        raise UserError(f"--nll-sequences must be >= 1, got {count}")
    seqs = long_sequences(split, edges, count)
    rows, failed = [], None
    for seq in sorted(seqs, key=lambda s: (s["tokens"].shape[0], s["id"])):
        row = {k: seq[k] for k in ("id", "speaker", "chapter")} | {"length": int(seq["tokens"].shape[0])}
        if failed is not None and row["length"] >= failed["length"]:
            row.update(status=failed["status"], bins={}, detail=f"not run: a {failed['length']}-token "
                                                                 f"sequence already ended with {failed['status']}")
            rows.append(row)
            continue
        outcome = run_limited(lambda s=seq: position_nll_bits(model, s["tokens"]), time_limit)
        row.update(status=outcome.status, seconds=round(outcome.seconds, 3),
                   bins=sequence_bins(outcome.value, edges) if outcome.ok else {})
        if not outcome.ok:
            row["detail"] = outcome.detail
            failed = row
        rows.append(row)
    bins, omitted = [], []
    longest = max((r["length"] for r in rows), default=0)
    for lo, hi in zip(edges, edges[1:]):
        label = bin_label(lo, hi)
        inside = [r["bins"][label] for r in rows if label in r["bins"]]
        if not inside:
            why = (f"no sequence reaches {hi} tokens (longest {longest})" if longest < hi
                   else "every sequence that reaches it failed to decode")
            omitted.append({"label": label, "lo": lo, "hi": hi, "reason": why})
            continue
        bits, tokens = sum(x["bits"] for x in inside), sum(x["tokens"] for x in inside)
        # The interval of one ratio: the paired bootstrap against zero errors resamples sequences.
        spread = paired_bootstrap([x["bits"] for x in inside], [0.0] * len(inside), [x["tokens"] for x in inside],
                                  resamples=resamples, seed=seed)
        bins.append({"label": label, "lo": lo, "hi": hi, "sequences": len(inside), "tokens": tokens,
                     "nll_bits": bits / tokens, "low": spread["low"], "high": spread["high"]})
    status = "ok" if bins else "not_measured"
    out = {"status": status, "edges": edges, "sequences_wanted": count, "bins": bins, "omitted": omitted,
           "speakers": len({r["speaker"] for r in rows}), "sequences": rows}
    if not bins:
        out["reason"] = (f"no chapter holds {edges[1]} audio tokens" if not rows
                         else "no sequence was scored")
    return out
