"""Sessions: consecutive utterances of one speaker joined into one training row.

A LaCT encoder updates its fast weights chunk after chunk; trained on sessions longer than a
chunk, its later chunks start from weights that earlier utterances of the same voice left, which
is what `adapt_to_speaker` does at test time. Unjoined, every utterance starts from the learnt
initial weights and carried state is something the model never saw.

Within a pool of rows: group by speaker, put each speaker's rows in recording order (utt_id order;
LibriSpeech ids are speaker-chapter-index), then cut greedily into runs whose total duration
reaches a target drawn uniformly from [min_seconds, max_seconds]; a run never passes max_seconds
unless a single utterance is longer. Joined row: features and audio tokens concatenated in time,
texts joined by a space, token ids joined by the space token (char tokenizer; BPE pieces already
begin words with their own space mark), durations and frame counts summed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from pipeline.errors import UserError


@dataclass(frozen=True)
class SessionConfig:
    min_seconds: float = 10.0
    max_seconds: float = 40.0

    def __post_init__(self) -> None:
        if not 0 < self.min_seconds <= self.max_seconds:
            raise UserError(f"data.sessions: need 0 < min_seconds <= max_seconds, got "
                            f"{self.min_seconds} and {self.max_seconds}")


def separator_ids(manifest: dict) -> list[int]:
    """Token ids put between two joined transcripts: the space for a char tokenizer."""
    info = manifest.get("text_tokenizer") or {}
    if info.get("kind") == "char":
        symbols = list(info["symbols"])
        return [symbols.index(" ") + 1] if " " in symbols else []
    return []


def session_runs(speakers: list[str], utt_ids: list[str], durations: list[float],
                 config: SessionConfig, rng: random.Random) -> list[list[int]]:
    """Row indices of each session: one speaker's rows in utt_id order, cut by duration."""
    by_speaker: dict[str, list[int]] = {}
    for i, speaker in enumerate(speakers):
        by_speaker.setdefault(speaker, []).append(i)
    runs = []
    for speaker in sorted(by_speaker):
        rows = sorted(by_speaker[speaker], key=lambda i: utt_ids[i])
        run, seconds, target = [], 0.0, rng.uniform(config.min_seconds, config.max_seconds)
        for i in rows:
            if run and seconds + durations[i] > config.max_seconds:
                runs.append(run)
                run, seconds, target = [], 0.0, rng.uniform(config.min_seconds, config.max_seconds)
            run.append(i)
            seconds += durations[i]
            if seconds >= target:
                runs.append(run)
                run, seconds, target = [], 0.0, rng.uniform(config.min_seconds, config.max_seconds)
        if run:
            runs.append(run)
    return runs


def join_sessions(columns: dict, manifest: dict, config: SessionConfig,
                  rng: random.Random) -> dict:
    """A pool of rows (column -> sequence) -> a pool of sessions with the same columns."""
    if "speaker" not in columns:
        raise UserError("data.sessions needs the shards' speaker column")
    ids = [str(u) for u in columns["utt_id"]]
    durations = [float(d) for d in columns["duration"]]
    runs = session_runs([str(s) for s in columns["speaker"]], ids, durations, config, rng)
    sep = separator_ids(manifest)
    out: dict = {c: [] for c in columns}
    for run in runs:
        for c in columns:
            values = [columns[c][i] for i in run]
            if c == "utt_id":
                joined = "+".join(ids[i] for i in run)
            elif c == "text":
                joined = " ".join(str(v) for v in values)
            elif c in ("duration", "num_frames"):
                joined = sum(values)
            elif c == "token_ids":
                joined = list(values[0])
                for v in values[1:]:
                    joined += sep + list(v)
            elif c == "features":      # row-major float16 bytes: frames follow frames
                joined = b"".join(values)
            elif c == "audio_tokens":
                joined = np.concatenate([np.asarray(v) for v in values])
            else:                      # per-speaker columns (speaker, language)
                joined = values[0]
            out[c].append(joined)
    return out
