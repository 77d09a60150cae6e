"""Sentence generators and speaker draws of the synthetic corpora (no audio: milliseconds)."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from pipeline.synthetic.commonvoice import plan_commonvoice
from pipeline.synthetic.english import EnglishSentences, vocabulary
from pipeline.synthetic.languages import LANGUAGES, VOICES, sentence_generator, written_form
from pipeline.synthetic.librispeech import plan_librispeech
from pipeline.synthetic.plan import estimated_seconds
from pipeline.synthetic.speakers import FEMALE_VARIANTS, MALE_VARIANTS, draw_speakers


def test_english_sentences_are_varied_bounded_and_reproducible():
    sentences = [EnglishSentences(random.Random(3)).sentence() for _ in range(1)]
    generator = EnglishSentences(random.Random(3))
    many = [generator.sentence() for _ in range(3000)]
    assert many[0] == sentences[0]
    again = EnglishSentences(random.Random(3))
    assert [again.sentence() for _ in range(3000)] == many
    other = EnglishSentences(random.Random(4))
    assert [other.sentence() for _ in range(50)] != many[:50]
    lengths = Counter(len(s.split()) for s in many)
    assert min(lengths) == 3 and max(lengths) == 12
    assert all(re.fullmatch(r"[a-z']+( [a-z']+)*", s) for s in many)
    assert len(set(many)) > 2900                       # varied, not a handful of templates
    assert len(Counter(s.split()[0] for s in many)) > 50
    words = {w for s in many for w in s.split()}
    assert words <= vocabulary()
    assert 300 <= len(vocabulary()) <= 700             # moderate: learnable by a small model
    assert any("'" in s for s in many)


@pytest.mark.parametrize("language", LANGUAGES)
def test_language_sentences(language):
    generator = sentence_generator(language, random.Random(0))
    sentences = [generator.sentence() for _ in range(300)]
    assert len(set(sentences)) > 150
    assert all(3 <= len(s.split()) <= 12 for s in sentences)
    regenerated = sentence_generator(language, random.Random(0))
    assert [regenerated.sentence() for _ in range(300)] == sentences
    written = written_form(sentences[0])
    assert written[0].isupper() and written.endswith(".")


def test_written_form_capitalises_i():
    assert written_form("i think i'm late", question=False) == "I think I'm late."
    assert written_form("did you see it", question=True) == "Did you see it?"


def test_speakers_are_disjoint_and_held_out():
    counts = {"train": 40, "dev": 5, "test": 5}
    speakers = draw_speakers("en", counts, random.Random(0), lambda split, i: f"{split}{i}", "train")
    assert {k: len(v) for k, v in speakers.items()} == counts
    settings = {split: {(s.voice, s.variant, s.pitch, s.speed) for s in group} for split, group in speakers.items()}
    assert all(len(settings[split]) == counts[split] for split in counts)
    train_voices = {(s.voice, s.variant) for s in speakers["train"]}
    for split in ("dev", "test"):
        assert not settings[split] & settings["train"]
        assert not {(s.voice, s.variant) for s in speakers[split]} & train_voices  # new voices
    assert not settings["dev"] & settings["test"]
    assert len({s.voice for s in speakers["train"]}) == len(VOICES["en"])       # every accent in training
    assert {s.gender for s in speakers["train"]} == {"male", "female"}


def test_librispeech_plan_meets_hours_and_is_deterministic():
    clips, speakers = plan_librispeech(0.5, None, seed=7)
    estimated = sum(estimated_seconds(c.spoken, c.speaker) for c in clips) / 3600
    assert 0.45 <= estimated <= 0.6
    by_split = Counter(c.split for c in clips)
    assert by_split["train-clean-100"] > 6 * by_split["test-clean"] > 0
    again, _ = plan_librispeech(0.5, None, seed=7)
    assert again == clips
    other, _ = plan_librispeech(0.5, None, seed=8)
    assert [c.transcript for c in other[:20]] != [c.transcript for c in clips[:20]]
    assert len({c.utt_id for c in clips}) == len(clips)
    for c in clips:
        speaker, chapter, _ = c.utt_id.split("-")
        assert c.rel_path == f"{c.split}/{speaker}/{chapter}/{c.utt_id}.flac"
        assert c.speaker.speaker_id == speaker and c.transcript == c.spoken.upper()
    train = {c.speaker.speaker_id for c in clips if c.split == "train-clean-100"}
    assert not train & {c.speaker.speaker_id for c in clips if c.split == "test-clean"}
    assert len(train) >= 20


def test_commonvoice_plan_per_language_and_split():
    clips, speakers = plan_commonvoice(None, 3, ["en", "de", "es"], seed=1)
    assert Counter((c.speaker.language, c.split) for c in clips) == {
        (lang, split): 3 for lang in ("en", "de", "es") for split in ("train", "dev", "test")}
    assert len({c.utt_id for c in clips}) == len(clips)
    for c in clips:
        lang = c.speaker.language
        assert re.fullmatch(rf"{lang}/clips/common_voice_{lang}_\d+\.mp3", c.rel_path)
        assert c.utt_id == f"{lang}/" + c.rel_path.rsplit("/", 1)[1][:-4]
        assert c.transcript[0].isupper() and c.transcript[-1] in ".?"
    assert plan_commonvoice(None, 3, ["en", "de", "es"], seed=1)[0] == clips


def test_tiny_held_out_splits_use_training_characters():
    """A character vocabulary is built on the training split: a tiny corpus must not test on unseen letters."""
    for count in (2, 3, 5):
        clips, _ = plan_librispeech(None, count, seed=0)
        training = {c for clip in clips if clip.split == "train-clean-100" for c in clip.transcript}
        assert all(set(clip.transcript) <= training for clip in clips)


def test_held_out_voices_stay_unheard_when_training_needs_more_speakers_than_pairs():
    n_pairs = len(VOICES["en"]) * len(MALE_VARIANTS + FEMALE_VARIANTS)
    counts = {"train": n_pairs + 50, "dev": 20, "test": 20}
    speakers = draw_speakers("en", counts, random.Random(1), lambda split, i: f"{split}{i}", "train")
    train_pairs = {(s.voice, s.variant) for s in speakers["train"]}
    for split in ("dev", "test"):
        assert len(speakers[split]) == 20
        assert not {(s.voice, s.variant) for s in speakers[split]} & train_pairs
