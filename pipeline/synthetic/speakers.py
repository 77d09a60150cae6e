"""Synthetic speakers: an espeak-ng voice (language/accent) x voice variant x pitch x speed.

A speaker keeps its settings for all of its utterances. Speakers of different splits never
share settings, and held-out splits (dev, test) prefer voice+variant pairs that no training
speaker uses, so test speakers are new voices, not only new ids.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass

from pipeline.synthetic.languages import VOICES

# Intelligible espeak-ng variants (robotic, whispering and croaking ones are left out).
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "klatt", "klatt2", "klatt3", "adam", "Alex",
                 "Andy", "benjamin", "boris", "david", "ed", "edward", "john", "max", "michel", "paul", "rob",
                 "robert", "zac", "norbert", "travis", "victor", "grandpa")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "Annie", "aunty", "linda", "steph", "anika", "shelby", "grandma")
PITCHES = tuple(range(25, 80, 5))    # espeak -p (0-99, default 50)
SPEEDS = tuple(range(135, 190, 10))  # espeak -s words per minute (default 175)


@dataclass(frozen=True)
class Speaker:
    speaker_id: str
    language: str
    voice: str        # espeak-ng voice, e.g. "en-gb-scotland"
    variant: str      # espeak-ng variant, e.g. "f3"
    pitch: int
    speed: int

    @property
    def gender(self) -> str:
        return "female" if self.variant in FEMALE_VARIANTS else "male"

    @property
    def espeak_voice(self) -> str:
        return f"{self.voice}+{self.variant}"

    def to_dict(self) -> dict:
        return {**asdict(self), "gender": self.gender}


def draw_speakers(language: str, counts: dict[str, int], rng: random.Random,
                  make_id, training_split: str) -> dict[str, list[Speaker]]:
    """Disjoint speakers per split: {split: [Speaker]} for counts {split: how many}.

    make_id(split, index) names a speaker. The training split is drawn first; other splits
    take voice+variant pairs unused in training while there are any left.
    """
    variants = MALE_VARIANTS + FEMALE_VARIANTS
    combos = list(itertools.product(VOICES[language], variants, PITCHES, SPEEDS))
    rng.shuffle(combos)
    used_combos: set[tuple] = set()
    training_pairs: set[tuple[str, str]] = set()
    speakers: dict[str, list[Speaker]] = {}
    order = [training_split] + [s for s in counts if s != training_split]
    for split in order:
        if split not in counts:
            continue
        held_out = split != training_split
        fresh = [c for c in combos if c not in used_combos and (c[0], c[1]) not in training_pairs]
        pool = fresh if held_out and len(fresh) >= counts[split] else [c for c in combos if c not in used_combos]
        chosen = []
        enough_pairs = len({c[:2] for c in pool}) > counts[split]
        for combo in pool:
            if len(chosen) == counts[split]:
                break
            # One speaker per voice+variant pair within a split while possible, for variety.
            if enough_pairs and any(c[:2] == combo[:2] for c in chosen):
                continue
            chosen.append(combo)
        used_combos.update(chosen)
        if not held_out:
            training_pairs.update((c[0], c[1]) for c in chosen)
        speakers[split] = [Speaker(make_id(split, i), language, *combo) for i, combo in enumerate(chosen)]
    return {split: speakers[split] for split in counts}
