"""CTC log-probabilities -> tokens with their frame spans -> timed segments and words.

The stream of log-prob frames is cut into pieces at pauses (a run of frames whose best token is
the blank), or, past `max_frames`, at the last blank frame: a blank between two tokens keeps them
apart, so decoding piece by piece gives the tokens of decoding the whole. Each piece is decoded
(greedy, or prefix beam search) and aligned: greedy gives its own path; a beam hypothesis is
aligned by Viterbi over the CTC topology (blank, t1, blank, t2, ..., blank). A piece becomes one
segment; words are the spans between spaces of the decoded text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

BLANK = 0


@dataclass
class Word:
    start: float
    end: float
    text: str


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text,
                "words": [{"start": round(w.start, 3), "end": round(w.end, 3), "text": w.text}
                          for w in self.words]}


def greedy_spans(logp: torch.Tensor) -> list[tuple[int, int, int]]:
    """Best path -> [(token, first frame, end frame)], repeats merged, blanks dropped."""
    best = logp.argmax(dim=-1).tolist()
    spans: list[tuple[int, int, int]] = []
    prev = BLANK
    for t, k in enumerate(best):
        if k != BLANK and k == prev:
            tok, s, _ = spans[-1]
            spans[-1] = (tok, s, t + 1)
        elif k != BLANK:
            spans.append((k, t, t + 1))
        prev = k
    return spans


def viterbi_spans(logp: torch.Tensor, tokens: list[int]) -> list[tuple[int, int, int]]:
    """The most likely CTC alignment of `tokens` to logp [T, V] -> [(token, first, end frame)]."""
    if not tokens:
        return []
    lp = logp.float().numpy()
    T = lp.shape[0]
    labels = np.full(2 * len(tokens) + 1, BLANK, dtype=np.int64)
    labels[1::2] = tokens
    S = len(labels)
    # a state may skip the blank before it when its token differs from the token two states back
    skip = np.zeros(S, dtype=bool)
    skip[3::2] = labels[3::2] != labels[1:-2:2]
    score = np.full(S, -np.inf)
    score[0] = lp[0, labels[0]]
    score[1] = lp[0, labels[1]]
    back = np.zeros((T, S), dtype=np.int8)   # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, T):
        stay = score
        step = np.concatenate([[-np.inf], score[:-1]])
        jump = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        options = np.stack([stay, step, jump])
        back[t] = options.argmax(axis=0)
        score = options.max(axis=0) + lp[t, labels]
    s = S - 1 if S == 1 or score[S - 1] >= score[S - 2] else S - 2
    states = np.empty(T, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        states[t] = s
        s -= int(back[t, s])
    spans: list[tuple[int, int, int]] = []
    for t, st in enumerate(states):
        if st % 2 == 1:
            i = st // 2
            if len(spans) > i:
                spans[i] = (spans[i][0], spans[i][1], t + 1)
            else:
                spans.append((tokens[i], t, t + 1))
    return spans


def _words(spans, tokenizer, seconds: float, offset: int) -> tuple[str, list[Word]]:
    """The decoded text of the spans and its words (text between spaces) with their times."""
    ids = [tok for tok, _, _ in spans]
    words: list[Word] = []
    current: list[str] = []
    start = end = 0
    prefix = ""
    for i, (tok, s, e) in enumerate(spans):
        # what this token adds to the decoded text (BPE pieces carry their own leading space)
        text = tokenizer.decode(ids[: i + 1])
        piece, prefix = text[len(prefix):], text
        parts = piece.split(" ")
        for j, part in enumerate(parts):
            if j > 0 and current:
                words.append(Word((offset + start) * seconds, (offset + end) * seconds, "".join(current)))
                current = []
            if part:
                if not current:
                    start = s
                current.append(part)
                end = e
    if current:
        words.append(Word((offset + start) * seconds, (offset + end) * seconds, "".join(current)))
    return tokenizer.decode(ids).strip(), words


class CTCSegmenter:
    """Feed log-prob chunks with push(); segments come out as pauses are found; finish() flushes."""

    def __init__(self, tokenizer, frame_seconds: float, beam_size: int | None = None,
                 pause_seconds: float = 0.4, max_seconds: float = 15.0):
        self.tokenizer = tokenizer
        self.seconds = frame_seconds
        self.beam_size = beam_size
        self.pause = max(1, round(pause_seconds / frame_seconds))
        self.max_frames = max(self.pause + 1, round(max_seconds / frame_seconds))
        self.pending: list[torch.Tensor] = []
        self.offset = 0          # global frame index of the first pending frame
        self.frames = 0          # total frames seen

    def _cut_point(self, best: list[int], final: bool) -> int | None:
        """Where to end the next piece (frames from the start of pending), or None to wait."""
        n = len(best)
        if final:
            return n if n else None
        run = 0
        seen_token = False
        for t, k in enumerate(best):
            if k == BLANK:
                run += 1
                if run == self.pause and seen_token:
                    return t - run // 2 + 1     # the middle of the first pause after a token
            else:
                run, seen_token = 0, True
        if n >= self.max_frames:
            blanks = [t for t, k in enumerate(best[: self.max_frames]) if k == BLANK]
            return (blanks[-1] + 1) if blanks else self.max_frames
        return None

    def _decode(self, logp: torch.Tensor) -> Segment | None:
        if self.beam_size and self.beam_size > 1:
            from models.decoding import ctc_prefix_beam_search

            tokens = ctc_prefix_beam_search(logp[None], beam_size=self.beam_size, blank=BLANK)[0]
            spans = viterbi_spans(logp, tokens)
        else:
            spans = greedy_spans(logp)
        if not spans:
            return None
        text, words = _words(spans, self.tokenizer, self.seconds, self.offset)
        if not text:
            return None
        return Segment(start=(self.offset + spans[0][1]) * self.seconds,
                       end=(self.offset + spans[-1][2]) * self.seconds, text=text, words=words)

    def _drain(self, final: bool) -> list[Segment]:
        out = []
        while self.pending:
            logp = torch.cat(self.pending)
            cut = self._cut_point(logp.argmax(dim=-1).tolist(), final)
            if cut is None:
                self.pending = [logp]
                break
            segment = self._decode(logp[:cut])
            if segment is not None:
                out.append(segment)
            self.offset += cut
            self.pending = [logp[cut:]] if cut < logp.shape[0] else []
        return out

    def push(self, logp: torch.Tensor) -> list[Segment]:
        self.pending.append(logp)
        self.frames += logp.shape[0]
        return self._drain(final=False)

    def finish(self) -> list[Segment]:
        return self._drain(final=True)
