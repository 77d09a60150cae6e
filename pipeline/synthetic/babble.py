"""Babble noise: a crowd of other voices of the session's engine, mixed into one bed per session.

Each talker reads random sentences of the session's language for about BED_SECONDS, in one call
of its engine (Festival takes most of a second to start), at unit power; the talkers are summed
and the bed scaled back to unit power. A worker process keeps the beds of its recent sessions,
since every utterance of a session takes its noise from the same bed.
"""

from __future__ import annotations

import functools
import random

import numpy as np

from pipeline.synthetic.conditions import Conditions
from pipeline.synthetic.engines import resample, speak
from pipeline.synthetic.languages import sentence_generator
from pipeline.synthetic.plan import estimated_seconds

BED_SECONDS = 10.0


@functools.lru_cache(maxsize=4)
def babble_bed(conditions: Conditions, rate: int) -> np.ndarray:
    """The session's babble at `rate`, unit power, BED_SECONDS long (float64)."""
    if not conditions.babble:
        raise ValueError("these conditions have no babble talkers")
    rng = random.Random(conditions.seed)
    length = int(BED_SECONDS * rate)
    bed = np.zeros(length)
    for talker in conditions.babble:
        sentences, seconds = [], 0.0
        generator = sentence_generator(talker.language, rng)
        while seconds < BED_SECONDS:
            sentences.append(generator.sentence())
            seconds += estimated_seconds(sentences[-1], talker)
        audio, talker_rate = speak(". ".join(sentences) + ".", talker)
        # Wrapped to the bed's length (the estimate can fall short), and started somewhere else in
        # the reading by each talker, so the crowd never pauses together.
        track = np.resize(resample(audio, talker_rate, rate).astype(np.float64), length)
        track = np.roll(track, rng.randrange(length))
        bed += track / max(float(np.sqrt(np.mean(track ** 2))), 1e-12)
    return bed / float(np.sqrt(np.mean(bed ** 2)))
