"""Long recordings built from a held-out split: each chapter's consecutive utterances joined.

A chapter is one speaker's one recording session (LibriSpeech `speaker-chapter-index` ids; a
split whose ids lack the chapter field counts each speaker as one chapter). A recording never
mixes chapters, so it never mixes speakers (nor a chapter's acoustic condition with another's).

For a target length, each chapter is cut from its first utterance on into consecutive,
non-overlapping recordings, each ending at the first utterance that reaches the target; a
leftover shorter than the target is dropped, never padded. Then up to `count` recordings are
taken round-robin over the chapters (the first recording of every chapter, then the second
ones, ...; every speaker's first chapter before any second one), so they come from as many
speakers as the split has. The `longest` set holds each chapter whole (the longest recording
the split allows for that voice), longest chapters first.

Each set says what it holds (recordings, speakers, chapters, lengths) and, when the split has
fewer recordings or speakers than wanted, says so: the counts are the truth, not the request.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field

import torch

from jobs.evaluation.data import EvalSplit, EvalUtterance
from pipeline.errors import UserError
from pipeline.sessions import SessionConfig, recording_of, session_runs

LONGEST = "longest"


@dataclass
class Recording:
    id: str                          # "<length label>/<chapter>/<n>": unique across sets
    length: str                      # the set's label: "30s", ..., or "longest"
    speaker: str
    chapter: str
    utterances: list[EvalUtterance]  # in recording order

    @property
    def utt_ids(self) -> list[str]:
        return [u.utt_id for u in self.utterances]

    @property
    def text(self) -> str:
        """The joined reference (utterance transcripts with one space between)."""
        return " ".join(u.text.strip() for u in self.utterances if u.text.strip())

    def features(self) -> torch.Tensor:
        """[T, mel]: the utterances' features one after another (built on demand: a 5-minute
        recording is 30,000 frames, and every set reuses the split's utterances)."""
        return torch.cat([u.features for u in self.utterances], dim=0)

    def frames(self) -> int:
        return sum(u.features.shape[0] for u in self.utterances)


@dataclass
class RecordingSet:
    length: str                       # label
    target_seconds: float | None      # None for whole chapters
    recordings: list[Recording]
    wanted_recordings: int
    wanted_speakers: int
    frame_rate: float
    notes: list[str] = field(default_factory=list)

    def seconds(self, rec: Recording) -> float:
        return rec.frames() / self.frame_rate

    def summary(self) -> dict:
        """What the set holds, and where it falls short of what was asked."""
        lengths = sorted(self.seconds(r) for r in self.recordings)
        return {"length": self.length, "target_seconds": self.target_seconds,
                "recordings": len(self.recordings),
                "speakers": len({r.speaker for r in self.recordings}),
                "chapters": len({r.chapter for r in self.recordings}),
                "seconds_min": round(lengths[0], 2) if lengths else None,
                "seconds_median": round(statistics.median(lengths), 2) if lengths else None,
                "seconds_max": round(lengths[-1], 2) if lengths else None,
                "wanted_recordings": self.wanted_recordings, "wanted_speakers": self.wanted_speakers,
                "notes": list(self.notes)}


def chapter_of(utt: EvalUtterance) -> str:
    """The chapter key: SPEAKER-CHAPTER, or the speaker for ids without a chapter (a Common Voice
    client); the recording that training sessions never cross (pipeline.sessions.recording_of)."""
    speaker, chapter = recording_of(utt.utt_id, utt.speaker)
    return f"{speaker}-{chapter}" if speaker and chapter else (speaker or chapter)


def chapters(split: EvalSplit) -> dict[str, list[EvalUtterance]]:
    """chapter -> its utterances in recording order (the split is in speaker, then id order)."""
    groups: dict[str, list[EvalUtterance]] = {}
    for utt in split.utterances:
        groups.setdefault(chapter_of(utt), []).append(utt)
    return groups


def cut(utterances: list[EvalUtterance], target_seconds: float, frame_rate: float) -> list[list[EvalUtterance]]:
    """Consecutive runs that each just reach target_seconds; a short leftover is dropped."""
    runs, run, frames = [], [], 0
    for utt in utterances:
        run.append(utt)
        frames += utt.features.shape[0]
        if frames / frame_rate >= target_seconds:
            runs.append(run)
            run, frames = [], 0
    return runs


def spread(chapter_names) -> list[str]:
    """Chapters ordered so that every speaker's first chapter comes before any speaker's second:
    a capped selection then covers as many speakers as it can."""
    rank: dict[str, int] = {}
    keyed = []
    for name in sorted(chapter_names):
        speaker = name.split("-")[0]
        keyed.append((rank.get(speaker, 0), name))
        rank[speaker] = rank.get(speaker, 0) + 1
    return [name for _, name in sorted(keyed)]


def round_robin(per_chapter: dict[str, list], count: int) -> list[tuple[str, int, object]]:
    """(chapter, index, item): every chapter's first item, then every second one, ..., up to
    count; chapters in spread() order."""
    picked, depth = [], 0
    while len(picked) < count and any(depth < len(v) for v in per_chapter.values()):
        for name in spread(per_chapter):
            if depth < len(per_chapter[name]) and len(picked) < count:
                picked.append((name, depth, per_chapter[name][depth]))
        depth += 1
    return picked


def label_of(seconds: float) -> str:
    return f"{seconds:g}s"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _shortfall(chosen: list[Recording], wanted: int, wanted_speakers: int, why: str) -> list[str]:
    notes = []
    speakers = len({r.speaker for r in chosen})
    if len(chosen) < wanted:
        notes.append(f"{plural(len(chosen), 'recording')}, not the {wanted} asked for: {why}")
    if speakers < wanted_speakers:
        notes.append(f"{plural(speakers, 'speaker')}, fewer than the {wanted_speakers} asked for: "
                     f"the split has no more with enough audio")
    return notes


def fixed_length_set(groups: dict[str, list[EvalUtterance]], target: float, count: int,
                     wanted_speakers: int, frame_rate: float) -> RecordingSet:
    label = label_of(target)
    runs = {c: cut(utts, target, frame_rate) for c, utts in groups.items()}
    runs = {c: r for c, r in runs.items() if r}
    chosen = [Recording(f"{label}/{c}/{i}", label, utts[0].speaker, c, utts)
              for c, i, utts in round_robin(runs, count)]
    available = sum(len(r) for r in runs.values())
    why = f"{len(runs)} of {len(groups)} chapters hold {target:g} s, {plural(available, 'recording')} in all"
    return RecordingSet(label, target, chosen, count, wanted_speakers, frame_rate,
                        _shortfall(chosen, count, wanted_speakers, why))


def longest_set(groups: dict[str, list[EvalUtterance]], count: int, wanted_speakers: int,
                frame_rate: float) -> RecordingSet:
    frames = {c: sum(u.features.shape[0] for u in utts) for c, utts in groups.items()}
    order = sorted(groups, key=lambda c: (-frames[c], c))[:count]
    chosen = [Recording(f"{LONGEST}/{c}/0", LONGEST, groups[c][0].speaker, c, groups[c]) for c in order]
    return RecordingSet(LONGEST, None, chosen, count, wanted_speakers, frame_rate,
                        _shortfall(chosen, count, wanted_speakers, f"the split has {len(groups)} chapters"))


def session_set(split: EvalSplit, min_seconds: float, max_seconds: float, seed: int = 0) -> RecordingSet:
    """The split cut into sessions the way training cuts its session rows (pipeline.sessions,
    lengths drawn from [min_seconds, max_seconds] with a seeded generator): every utterance in
    exactly one session, so every model is scored on the same sessions."""
    config = SessionConfig(float(min_seconds), float(max_seconds))   # UserError on bad bounds
    rng = random.Random(seed)
    recordings = []
    for chapter, utts in chapters(split).items():   # one chapter at a time: a session never crosses one
        for run in session_runs([u.speaker for u in utts], [u.utt_id for u in utts], [u.duration for u in utts],
                                config, rng):
            members = [utts[i] for i in run]
            recordings.append(Recording(f"session/{chapter}/{members[0].utt_id}", "session", members[0].speaker,
                                        chapter, members))
    return RecordingSet("session", None, recordings, len(recordings), 1, split.frame_rate)


def build_recording_sets(split: EvalSplit, seconds: list[float], longest: bool, count: int,
                         wanted_speakers: int) -> list[RecordingSet]:
    """One set per target length (ascending), then the whole chapters when `longest`."""
    if count < 1 or wanted_speakers < 1:
        raise UserError(f"long-form recordings and speakers per length must be >= 1, got {count} and "
                        f"{wanted_speakers}")
    if any(not s > 0 for s in seconds):
        raise UserError(f"long-form lengths must be > 0 seconds, got {seconds}")
    if any(u.features is None for u in split.utterances):
        raise UserError("long-form recordings need the split's features (an ASR split)")
    groups = chapters(split)
    sets = [fixed_length_set(groups, s, count, wanted_speakers, split.frame_rate) for s in sorted(set(seconds))]
    if longest:
        sets.append(longest_set(groups, count, wanted_speakers, split.frame_rate))
    return sets
