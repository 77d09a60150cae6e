"""Synthetic speakers: an espeak-ng voice (language/accent) x voice variant x pitch x speed.

A speaker keeps its settings for all of its utterances. Speakers of different splits never
share settings, and held-out splits (dev, test) use voice+variant pairs that no training
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

    make_id(split, index) names a speaker. The held-out splits are drawn first and the training
    split never uses their voice+variant pairs, so held-out voices stay unheard at any corpus
    size (training repeats its own pairs at other pitches and speeds once it runs out).
    """
    variants = MALE_VARIANTS + FEMALE_VARIANTS
    combos = list(itertools.product(VOICES[language], variants, PITCHES, SPEEDS))
    rng.shuffle(combos)
    used_combos: set[tuple] = set()
    held_out_pairs: set[tuple[str, str]] = set()
    speakers: dict[str, list[Speaker]] = {}
    order = [s for s in counts if s != training_split] + [s for s in counts if s == training_split]
    for split in order:
        held_out = split != training_split
        pool = [c for c in combos if c not in used_combos and (held_out or c[:2] not in held_out_pairs)]
        if len(pool) < counts[split]:  # a tiny voice inventory: reuse held-out pairs
            pool = [c for c in combos if c not in used_combos]
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
        if held_out:
            held_out_pairs.update(c[:2] for c in chosen)
        speakers[split] = [Speaker(make_id(split, i), language, *combo) for i, combo in enumerate(chosen)]
    return {split: speakers[split] for split in counts}
