"""Sessions: consecutive utterances of one recording joined into one training row.

A LaCT encoder updates its fast weights chunk after chunk; trained on sessions longer than a
chunk, its later chunks start from weights that earlier utterances of the same voice left, which
is what `adapt_to_speaker` does at test time. Unjoined, every utterance starts from the learnt
initial weights and carried state is something the model never saw.

A session never crosses a recording: a LibriSpeech chapter (utt_id SPEAKER-CHAPTER-INDEX, whose
chapter also fixes the recording conditions) or, for ids without a chapter, the speaker (a Common
Voice client); a row without a speaker is a recording of its own. Each recording's rows, in
utt_id order (recording order for LibriSpeech), are cut greedily into runs whose total duration
reaches a target drawn uniformly from [min_seconds, max_seconds]; a run never passes max_seconds,
and an utterance longer than that is a session of its own (cutting the recording's stretch
there). A stretch's last run, when shorter than min_seconds, is merged into the run before it
when the two fit under max_seconds, and otherwise the two are re-cut where both reach
min_seconds. What stays out of [min_seconds, max_seconds]: a single utterance longer than
max_seconds, a stretch shorter than min_seconds in all (a short chapter), and a run cut short
because its next utterance would pass max_seconds (only when utterances are longer than
max_seconds - min_seconds). The plan's summary counts them (pipeline/session_plan.py).

Joined row: features and audio tokens concatenated in time, texts joined by a space, token ids
joined by the space token (char tokenizer; BPE pieces already begin words with their own space
mark), durations and frame counts summed, utt_ids joined by "+".

Which rows are planned together (the whole split, before any shuffling) is
pipeline/session_plan.py's.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

import numpy as np

from pipeline.errors import UserError

# LibriSpeech's SPEAKER-CHAPTER-INDEX (Common Voice ids are LANG/CLIP: no match)
CHAPTERED_ID = re.compile(r"^([^-/]+)-([^-/]+)-[^-/]+$")


@dataclass(frozen=True)
class SessionConfig:
    min_seconds: float = 10.0
    max_seconds: float = 40.0

    def __post_init__(self) -> None:
        if not 0 < self.min_seconds <= self.max_seconds:
            raise UserError(f"data.sessions: need 0 < min_seconds <= max_seconds, got "
                            f"{self.min_seconds} and {self.max_seconds}")


def recording_of(utt_id: str, speaker: str) -> tuple[str, str]:
    """(speaker, chapter) of a row; chapter "" when its id has none (Common Voice: the client is
    the recording); a row without a speaker is a recording of its own."""
    match = CHAPTERED_ID.match(utt_id)
    if speaker and match and match.group(1) == speaker:
        return speaker, match.group(2)
    return (speaker, "") if speaker else ("", utt_id)


def separator_ids(manifest: dict) -> list[int]:
    """Token ids put between two joined transcripts: the space for a char tokenizer."""
    info = manifest.get("text_tokenizer") or {}
    if info.get("kind") == "char":
        symbols = list(info["symbols"])
        return [symbols.index(" ") + 1] if " " in symbols else []
    return []


def session_runs(speakers: list[str], utt_ids: list[str], durations: list[float],
                 config: SessionConfig, rng: random.Random) -> list[list[int]]:
    """Row indices of each session, recordings in sorted order, each run in utt_id order."""
    by_recording: dict[tuple[str, str], list[int]] = {}
    for i, (speaker, utt_id) in enumerate(zip(speakers, utt_ids)):
        by_recording.setdefault(recording_of(utt_id, speaker), []).append(i)
    runs = []
    for key in sorted(by_recording):
        rows = sorted(by_recording[key], key=lambda i: utt_ids[i])
        runs += cut_recording(rows, durations, config, rng)
    return runs


def cut_recording(rows: list[int], durations: list[float], config: SessionConfig,
                  rng: random.Random) -> list[list[int]]:
    """One recording's rows (in order) -> runs: each utterance longer than max_seconds a run of
    its own, the stretches between them cut by cut_stretch."""
    runs: list[list[int]] = []
    stretch: list[int] = []
    for i in rows:
        if durations[i] > config.max_seconds:     # too long to share: a session of its own
            runs += cut_stretch(stretch, durations, config, rng) + [[i]]
            stretch = []
        else:
            stretch.append(i)
    return runs + cut_stretch(stretch, durations, config, rng)


def cut_stretch(rows: list[int], durations: list[float], config: SessionConfig,
                rng: random.Random) -> list[list[int]]:
    """Consecutive rows of at most max_seconds each -> runs: greedy to a drawn target, then a
    short last run merged or re-cut (see the module docstring)."""
    lo, hi = config.min_seconds, config.max_seconds
    runs: list[list[int]] = []
    run, seconds, target = [], 0.0, rng.uniform(lo, hi)
    for i in rows:
        if run and seconds + durations[i] > hi:
            runs.append(run)
            run, seconds, target = [], 0.0, rng.uniform(lo, hi)
        run.append(i)
        seconds += durations[i]
        if seconds >= target:
            runs.append(run)
            run, seconds, target = [], 0.0, rng.uniform(lo, hi)
    if run:
        runs.append(run)
    if len(runs) >= 2 and total(runs[-1], durations) < lo:
        runs[-2:] = rebalance(runs[-2], runs[-1], durations, config)
    return runs


def total(run: list[int], durations: list[float]) -> float:
    return sum(durations[i] for i in run)


def rebalance(run: list[int], short: list[int], durations: list[float],
              config: SessionConfig) -> list[list[int]]:
    """A run and the short last run after it: one run when they fit under max_seconds, else
    the most even cut where both reach min_seconds (as they were when there is none)."""
    lo, hi = config.min_seconds, config.max_seconds
    rows = run + short
    whole = total(rows, durations)
    if whole <= hi:
        return [rows]
    best, best_gap, head = None, math.inf, 0.0
    for k in range(1, len(rows)):
        head += durations[rows[k - 1]]
        tail = whole - head
        if lo <= head <= hi and lo <= tail <= hi and abs(head - tail) < best_gap:
            best, best_gap = k, abs(head - tail)
    return [run, short] if best is None else [rows[:best], rows[best:]]


def join_run(columns: dict, run: list[int], sep: list[int]) -> dict:
    """The rows `run` of a column dict (column -> sequence) joined into one row (a dict)."""
    row: dict = {}
    for c, column in columns.items():
        values = [column[i] for i in run]
        if c == "utt_id":
            row[c] = "+".join(str(v) for v in values)
        elif c == "text":
            row[c] = " ".join(str(v) for v in values)
        elif c in ("duration", "num_frames"):
            row[c] = sum(values)
        elif c == "token_ids":
            joined = list(values[0])
            for v in values[1:]:
                joined += sep + list(v)
            row[c] = joined
        elif c == "features":      # row-major float16 bytes: frames follow frames
            row[c] = b"".join(values)
        elif c == "audio_tokens":
            row[c] = np.concatenate([np.asarray(v) for v in values])
        else:                      # per-recording columns (speaker, language)
            row[c] = values[0]
    return row


def join_runs(columns: dict, runs: list[list[int]], manifest: dict) -> dict:
    """Rows (column -> sequence) -> sessions (column -> sequence), one per run."""
    sep = separator_ids(manifest)
    joined = [join_run(columns, run, sep) for run in runs]
    return {c: [row[c] for row in joined] for c in columns}
