"""The synthetic Common Voice layout (one directory per language, as in a release):

    ROOT/LANG/clips/common_voice_LANG_NNNNNNNN.mp3     48 kHz mono MP3
    ROOT/LANG/train.tsv, dev.tsv, test.tsv              Common Voice 17+ columns (CV_COLUMNS)
    ROOT/LANG/validated.tsv                             all rows of train, dev and test
    ROOT/LANG/clip_durations.tsv                        clip, duration[ms]
    ROOT/conditions.tsv                                 with --conditions: one row per client (a session)

The hours are shared equally among languages, and within a language 80/10/10 among train, dev
and test, whose speakers (client_id) are disjoint as in real releases. Sentences are written
Common Voice style (capitalised, final punctuation).
"""

from __future__ import annotations

import hashlib
import random

from pipeline.synthetic.conditions import Session
from pipeline.synthetic.languages import sentence_generator, written_form
from pipeline.synthetic.plan import Clip, Voicing, characters, sentences_for_speakers, speaker_count, split_budget
from pipeline.synthetic.speakers import Speaker, draw_speakers

SPLITS = {"train": 0.8, "dev": 0.1, "test": 0.1}
TRAINING_SPLIT = "train"
TEST_SPLIT = "test"
SAMPLE_RATE = 48000
# The header of Common Voice 17.0 and later releases.
CV_COLUMNS = ("client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes",
              "age", "gender", "accents", "variant", "locale", "segment")
AGES = ("", "teens", "twenties", "thirties", "forties", "fifties", "sixties")
ACCENTS = {"en-us": "United States English", "en-gb": "England English", "en-gb-scotland": "Scottish English",
           "en-gb-x-rp": "England English", "en-029": "West Indies and Bermuda", "en-us-nyc": "United States English",
           "en-gb-x-gbclan": "Northern England English", "en-gb-x-gbcwmd": "Midlands English",
           "fr-be": "Français de Belgique", "fr-ch": "Français de Suisse", "es-419": "América Latina"}


def client_id(seed: int, speaker: Speaker) -> str:
    """128 hex digits, like Common Voice's hashed client ids."""
    return hashlib.sha512(f"lact-audio-synth:{seed}:{speaker.language}:{speaker.speaker_id}".encode()).hexdigest()


def plan_commonvoice(hours: float | None, utterances_per_split: int | None, languages: list[str],
                     seed: int, voicing: Voicing = Voicing()) -> tuple[list[Clip], dict[str, list[Speaker]]]:
    rng = random.Random(f"commonvoice:{seed}")
    clips: list[Clip] = []
    all_speakers: dict[str, list[Speaker]] = {}
    clip_number = 19_000_000 + rng.randrange(1_000_000)
    for language in languages:
        lang_hours = None if hours is None else hours / len(languages)
        test_hours = None if voicing.test_hours is None else voicing.test_hours / len(languages)
        budgets = {split: split_budget(lang_hours, utterances_per_split, fraction, test_hours if split == TEST_SPLIT else None)
                   for split, fraction in SPLITS.items()}
        minutes = {split: voicing.chapter_minutes(split == TEST_SPLIT) for split in SPLITS}
        counts = {split: speaker_count(*budget, minutes[split]) for split, budget in budgets.items()}
        speakers = draw_speakers(language, counts, rng, lambda split, i, lang=language: f"{lang}-{split}-{i:03d}",
                                 TRAINING_SPLIT, voicing.engines, voicing.held_out_engines)
        generator = sentence_generator(language, rng)
        training_characters = None
        for split, (seconds, count) in budgets.items():  # the training split comes first
            rows = []
            per_speaker = sentences_for_speakers(speakers[split], seconds, count, generator, rng, training_characters,
                                                 minutes[split])
            if split == TRAINING_SPLIT:
                training_characters = characters(per_speaker)
            for speaker, sentences in zip(speakers[split], per_speaker):
                for sentence in sentences:
                    question = language == "en" and generator.is_question(sentence)
                    rows.append((speaker, written_form(sentence, question)))
            rng.shuffle(rows)  # release TSVs are not grouped by speaker
            for speaker, text in rows:
                clip_number += rng.randint(1, 40)
                name = f"common_voice_{language}_{clip_number}"
                clips.append(Clip(
                    rel_path=f"{language}/clips/{name}.mp3", utt_id=f"{language}/{name}", split=split,
                    speaker=speaker, spoken=text, transcript=text, sample_rate=SAMPLE_RATE, audio_format="MP3",
                ))
            all_speakers[f"{language}/{split}"] = speakers[split]
    return clips, all_speakers


def commonvoice_text_files(clips: list[Clip], seconds: dict[str, float], seed: int) -> dict[str, str]:
    """The TSVs of every language, given the measured seconds per utt id."""
    rng = random.Random(f"commonvoice-votes:{seed}")
    header = "\t".join(CV_COLUMNS)
    tables: dict[tuple[str, str], list[str]] = {}
    durations: dict[str, list[str]] = {}
    demographics: dict[str, tuple[str, str, str]] = {}
    for clip in clips:
        speaker = clip.speaker
        if speaker.speaker_id not in demographics:
            demographics[speaker.speaker_id] = (
                rng.choice(AGES), "female_feminine" if speaker.gender == "female" else "male_masculine",
                ACCENTS.get(speaker.voice, ""))
        age, gender, accent = demographics[speaker.speaker_id]
        row = {
            "client_id": client_id(seed, speaker), "path": clip.rel_path.rsplit("/", 1)[1],
            "sentence_id": hashlib.sha256(clip.transcript.encode()).hexdigest(), "sentence": clip.transcript,
            "sentence_domain": "", "up_votes": str(rng.randint(2, 5)), "down_votes": str(rng.randint(0, 1)),
            "age": age, "gender": gender, "accents": accent, "variant": "", "locale": speaker.language, "segment": "",
        }
        tables.setdefault((speaker.language, clip.split), []).append("\t".join(row[c] for c in CV_COLUMNS))
        durations.setdefault(speaker.language, []).append(f"{row['path']}\t{round(seconds[clip.utt_id] * 1000)}")
    files = {}
    for (language, split), rows in tables.items():
        files[f"{language}/{split}.tsv"] = "\n".join([header, *rows]) + "\n"
    for language in durations:
        rows = [row for split in SPLITS for row in tables.get((language, split), [])]
        files[f"{language}/validated.tsv"] = "\n".join([header, *rows]) + "\n"
        files[f"{language}/clip_durations.tsv"] = "\n".join(["clip\tduration[ms]", *durations[language]]) + "\n"
    return files


def commonvoice_session(clip: Clip, seed: int) -> Session:
    """A client: its client_id, as the TSVs write it."""
    client = client_id(seed, clip.speaker)
    return Session(client, clip.split, clip.speaker, client)
