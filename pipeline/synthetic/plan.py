"""What a synthetic corpus will contain, decided up front from the seed: one Clip per utterance.

The plan is made in one process from one random.Random, so the same seed gives the same
sentences, speakers, ids and paths whatever the number of workers that render the audio.
Durations are estimated from word counts and speaking rate to meet an hours budget; the real
durations are measured when rendering.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pipeline.synthetic.conditions import Conditions
from pipeline.synthetic.speakers import ESPEAK, Speaker

UTTERANCES_PER_SPEAKER = 10   # LibriSpeech has ~100 per chapter; fewer gives more voices per hour,
                              # which is what lets a model generalise to held-out voices
CHARSET_ATTEMPTS = 400        # tries for a held-out sentence within the training characters
MEAN_SECONDS = 2.1            # mean estimated length of a generated English sentence


@dataclass(frozen=True)
class Clip:
    rel_path: str       # path under the corpus root
    utt_id: str
    split: str
    speaker: Speaker
    spoken: str         # what the engine reads
    transcript: str     # what the corpus files record
    sample_rate: int    # of the written file
    audio_format: str   # "FLAC" | "MP3" (soundfile format names)
    conditions: Conditions | None = None   # the session's recording conditions (synth --conditions)


@dataclass(frozen=True)
class Voicing:
    """Who speaks and for how long; the defaults make the corpus this synthesiser always made.

    minutes_per_chapter: each speaker reads one chapter (a Common Voice client: one set of
    clips) of about that many minutes, and the split has as many speakers as its hours allow
    (at least two). test_minutes_per_chapter: the same for the test split only (default:
    minutes_per_chapter), for long-form test recordings beside short training chapters.
    test_hours: the test split's hours (default: its 10 % of the total). Train and dev are drawn
    before the test split from the same stream, so with the same number of test speakers (test
    hours / test minutes per chapter) they stay byte-identical: a longer test split for a corpus
    models were already trained on.
    """
    engines: tuple[str, ...] = (ESPEAK,)
    held_out_engines: tuple[str, ...] = ()   # engines heard in dev and test only
    minutes_per_chapter: float | None = None
    test_minutes_per_chapter: float | None = None
    test_hours: float | None = None

    def chapter_minutes(self, is_test: bool) -> float | None:
        if is_test and self.test_minutes_per_chapter is not None:
            return self.test_minutes_per_chapter
        return self.minutes_per_chapter


def estimated_seconds(sentence: str, speaker: Speaker) -> float:
    """An utterance lasts ~0.83 x words / espeak's nominal words-per-minute, plus ~0.2 s of silence (measured)."""
    return 0.83 * len(sentence.split()) * 60.0 / speaker.speed + 0.2


def split_budget(hours: float | None, utterances_per_split: int | None, fraction: float,
                 own_hours: float | None = None) -> tuple[float | None, int | None]:
    """(seconds, None) for an hours budget, or (None, count) for a fixed number of utterances.
    own_hours: the split's hours, set apart from the total (Voicing.test_hours)."""
    if utterances_per_split is not None:
        return None, utterances_per_split
    return (hours * fraction if own_hours is None else own_hours) * 3600.0, None


def speaker_count(seconds: float | None, count: int | None, chapter_minutes: float | None = None) -> int:
    """At least two speakers per split (one when the split has a single utterance)."""
    if chapter_minutes is not None:
        return max(2, round(seconds / (chapter_minutes * 60.0)))
    if count is not None:
        return max(1, min(count, max(2, round(count / UTTERANCES_PER_SPEAKER))))
    return max(2, round(seconds / MEAN_SECONDS / UTTERANCES_PER_SPEAKER))


def sentences_for_speakers(speakers: list[Speaker], seconds: float | None, count: int | None, generator,
                           rng: random.Random, charset: set[str] | None = None,
                           chapter_minutes: float | None = None) -> list[list[str]]:
    """Sentences per speaker: `count` in total spread evenly, or until `seconds` (estimated) are met,
    or (chapter_minutes) until each speaker has read at least that many minutes.

    charset (for held-out splits): prefer sentences whose characters all occur in the training
    split, so a tiny corpus never tests on a letter its training split lacks (a character
    vocabulary is built from the training split). A corpus of any real size covers the whole
    alphabet in training, and then this changes nothing.
    """
    def draw() -> str:
        if charset is None:
            return generator.sentence()
        best, best_unseen = "", None
        for _ in range(CHARSET_ATTEMPTS):
            sentence = generator.sentence()
            unseen = len(set(sentence.lower()) - charset)
            if unseen == 0:
                return sentence
            if best_unseen is None or unseen < best_unseen:
                best, best_unseen = sentence, unseen
        return best

    per_speaker: list[list[str]] = [[] for _ in speakers]
    if count is not None:
        for i in range(count):
            per_speaker[i % len(speakers)].append(draw())
        return per_speaker
    budget = seconds / len(speakers) if chapter_minutes is None else chapter_minutes * 60.0
    for i, speaker in enumerate(speakers):
        spoken = 0.0
        # A little spread in how much each speaker talks, as in real corpora; never under a
        # chapter's minutes, which long-form evaluation counts on.
        target = budget * (rng.uniform(0.8, 1.2) if chapter_minutes is None else rng.uniform(1.0, 1.1))
        while spoken < target or not per_speaker[i]:
            sentence = draw()
            per_speaker[i].append(sentence)
            spoken += estimated_seconds(sentence, speaker)
    return per_speaker


def characters(sentences_by_speaker: list[list[str]]) -> set[str]:
    return {c for sentences in sentences_by_speaker for sentence in sentences for c in sentence.lower()}
