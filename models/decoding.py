"""CTC decoding: greedy (best path) and prefix beam search. Blank id 0 by default."""

from __future__ import annotations

import math
from collections import defaultdict

import torch

NEG_INF = float("-inf")


def _lengths(logits: torch.Tensor, lengths: torch.Tensor | None) -> list[int]:
    if logits.dim() != 3:
        raise ValueError(f"logits must be [B, T, V], got {tuple(logits.shape)}")
    B, T, _ = logits.shape
    if lengths is None:
        return [T] * B
    return [min(int(n), T) for n in lengths]


def ctc_greedy_decode(logits: torch.Tensor, lengths: torch.Tensor | None = None, blank: int = 0
                      ) -> list[list[int]]:
    """Best path: argmax per frame, merge repeats, drop blanks."""
    best = logits.argmax(dim=-1).cpu()
    out = []
    for b, n in enumerate(_lengths(logits, lengths)):
        ids = torch.unique_consecutive(best[b, :n])
        out.append([int(i) for i in ids if int(i) != blank])
    return out


def _logaddexp(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def ctc_prefix_beam_search(logits: torch.Tensor, lengths: torch.Tensor | None = None,
                           beam_size: int = 8, blank: int = 0,
                           token_candidates: int | None = None) -> list[list[int]]:
    """CTC prefix beam search over log-softmax(logits): keeps the beam_size prefixes with the
    highest total probability (sum over all alignments). Per frame only the
    `token_candidates` most likely tokens (default beam_size) extend prefixes."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    logp = torch.log_softmax(logits.detach().float(), dim=-1).cpu()
    V = logp.shape[-1]
    k = min(V, token_candidates or beam_size)
    results = []
    for b, n in enumerate(_lengths(logits, lengths)):
        beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}  # (p_blank, p_nonblank)
        for t in range(n):
            frame = logp[b, t]
            lp = frame.tolist()
            cands = [c for c in frame.topk(k).indices.tolist() if c != blank]
            nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
            for prefix, (pb, pnb) in beams.items():
                total = _logaddexp(pb, pnb)
                entry = nxt[prefix]
                entry[0] = _logaddexp(entry[0], total + lp[blank])
                last = prefix[-1] if prefix else None
                if last is not None:  # repeated last token collapses onto the same prefix
                    entry[1] = _logaddexp(entry[1], pnb + lp[last])
                for c in cands:
                    ext = nxt[prefix + (c,)]
                    # a repeat of the last token needs a blank in between
                    ext[1] = _logaddexp(ext[1], (pb if c == last else total) + lp[c])
            ranked = sorted(nxt.items(), key=lambda kv: _logaddexp(*kv[1]), reverse=True)
            beams = {p: (s[0], s[1]) for p, s in ranked[:beam_size]}
        best = max(beams.items(), key=lambda kv: _logaddexp(*kv[1]))[0]
        results.append(list(best))
    return results
