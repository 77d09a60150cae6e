"""The synthetic LibriSpeech layout:

    ROOT/SPLIT/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac     16 kHz mono 16-bit FLAC
    ROOT/SPLIT/SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt    `UTTID TRANSCRIPT IN UPPER CASE`
    ROOT/SPEAKERS.TXT                                       as in the real release (NAME = voice settings)
    ROOT/conditions.tsv                                     with --conditions: one row per chapter

Splits train-clean-100 (80% of the hours), dev-clean (10%) and test-clean (10%). Speakers of the
three splits are disjoint, and dev/test speakers use espeak voice+variant pairs that no training
speaker uses (held-out voices). With --minutes-per-chapter each speaker reads one chapter of
about that length.
"""

from __future__ import annotations

import random
from collections import defaultdict

from pipeline.synthetic.conditions import Session
from pipeline.synthetic.english import EnglishSentences
from pipeline.synthetic.plan import Clip, Voicing, characters, sentences_for_speakers, speaker_count, split_budget
from pipeline.synthetic.speakers import ESPEAK, Speaker, draw_speakers

SPLITS = {"train-clean-100": 0.8, "dev-clean": 0.1, "test-clean": 0.1}
TRAINING_SPLIT = "train-clean-100"
TEST_SPLIT = "test-clean"
SAMPLE_RATE = 16000


def plan_librispeech(hours: float | None, utterances_per_split: int | None, seed: int,
                     voicing: Voicing = Voicing()) -> tuple[list[Clip], dict[str, list[Speaker]]]:
    rng = random.Random(f"librispeech:{seed}")
    budgets = {split: split_budget(hours, utterances_per_split, fraction, voicing.test_hours if split == TEST_SPLIT else None)
               for split, fraction in SPLITS.items()}
    minutes = {split: voicing.chapter_minutes(split == TEST_SPLIT) for split in SPLITS}
    counts = {split: speaker_count(*budget, minutes[split]) for split, budget in budgets.items()}
    speaker_ids = rng.sample(range(100, 10000), sum(counts.values()))
    ids = iter(speaker_ids)
    speakers = draw_speakers("en", counts, rng, lambda split, i: str(next(ids)), TRAINING_SPLIT,
                             voicing.engines, voicing.held_out_engines)
    chapter_ids = iter(rng.sample(range(10000, 400000), 2 * sum(counts.values())))
    generator = EnglishSentences(rng)
    clips: list[Clip] = []
    training_characters = None
    for split, (seconds, count) in budgets.items():  # the training split comes first
        per_speaker = sentences_for_speakers(speakers[split], seconds, count, generator, rng, training_characters,
                                             minutes[split])
        if split == TRAINING_SPLIT:
            training_characters = characters(per_speaker)
        for speaker, sentences in zip(speakers[split], per_speaker):
            if minutes[split] is not None:   # one chapter of the asked length
                chapters = [next(chapter_ids)]
            else:
                chapters = [next(chapter_ids) for _ in range(1 if len(sentences) < 20 or rng.random() < 0.5 else 2)]
            half = (len(sentences) + 1) // 2
            chunks = [sentences] if len(chapters) == 1 else [sentences[:half], sentences[half:]]
            for chapter, chunk in zip(chapters, chunks):
                for index, sentence in enumerate(chunk):
                    utt_id = f"{speaker.speaker_id}-{chapter}-{index:04d}"
                    clips.append(Clip(
                        rel_path=f"{split}/{speaker.speaker_id}/{chapter}/{utt_id}.flac", utt_id=utt_id,
                        split=split, speaker=speaker, spoken=sentence, transcript=sentence.upper(),
                        sample_rate=SAMPLE_RATE, audio_format="FLAC",
                    ))
    return clips, speakers


def librispeech_text_files(clips: list[Clip], seconds: dict[str, float]) -> dict[str, str]:
    """trans.txt per chapter and SPEAKERS.TXT, given the measured seconds per utt id."""
    chapters: dict[str, list[Clip]] = defaultdict(list)
    minutes: dict[tuple[str, str], float] = defaultdict(float)
    for clip in clips:
        chapters[clip.rel_path.rsplit("/", 1)[0]].append(clip)
        minutes[(clip.speaker.speaker_id, clip.split)] += seconds[clip.utt_id] / 60.0
    files = {}
    for directory, members in chapters.items():
        speaker, chapter = directory.split("/")[1:3]
        lines = [f"{c.utt_id} {c.transcript}" for c in sorted(members, key=lambda c: c.utt_id)]
        files[f"{directory}/{speaker}-{chapter}.trans.txt"] = "\n".join(lines) + "\n"
    speakers = {c.speaker.speaker_id: c for c in clips}
    name = "NAME (espeak-ng voice+variant, pitch, speed)"
    if any(c.speaker.engine != ESPEAK for c in speakers.values()):
        name += "; festival:voice+register, f0 Hz, speed"
    rows = [f";ID  |SEX| SUBSET           |MINUTES| {name}"]
    for speaker_id in sorted(speakers, key=int):
        clip = speakers[speaker_id]
        s = clip.speaker
        rows.append(f"{speaker_id:<5}| {'F' if s.gender == 'female' else 'M'} | {clip.split:<17}| "
                    f"{minutes[(speaker_id, clip.split)]:5.2f} | {s.voice_name} p{s.pitch} s{s.speed}")
    files["SPEAKERS.TXT"] = "\n".join(rows) + "\n"
    return files


def librispeech_session(clip: Clip) -> Session:
    """A chapter: SPEAKER-CHAPTER, the utt id less its index."""
    return Session(clip.utt_id.rsplit("-", 1)[0], clip.split, clip.speaker, clip.speaker.speaker_id)
