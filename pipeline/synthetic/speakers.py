"""Synthetic speakers: a voice of one engine x voice variant x pitch x speed.

espeak-ng (the default engine): an espeak voice (language/accent) x variant x pitch (espeak's
0-99 scale) x speed (words per minute). Festival (English only, optional): a Festival voice x
pitch register ("low", "mid", "high") x pitch (f0 mean in Hz) x speed (words per minute).

A speaker keeps its settings for all of its utterances. Speakers of different splits never
share settings, and held-out splits (dev, test) use voice+variant pairs that no training
speaker uses, so test speakers are new voices, not only new ids. A whole engine can be held
out as well: its speakers then appear in dev and test only.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass

from pipeline.errors import UserError
from pipeline.synthetic.languages import VOICES

ESPEAK = "espeak-ng"
FESTIVAL = "festival"
ENGINES = (ESPEAK, FESTIVAL)

# Intelligible espeak-ng variants (robotic, whispering and croaking ones are left out).
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "klatt", "klatt2", "klatt3", "adam", "Alex",
                 "Andy", "benjamin", "boris", "david", "ed", "edward", "john", "max", "michel", "paul", "rob",
                 "robert", "zac", "norbert", "travis", "victor", "grandpa")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "Annie", "aunty", "linda", "steph", "anika", "shelby", "grandma")
PITCHES = tuple(range(25, 80, 5))    # espeak -p (0-99, default 50)
SPEEDS = tuple(range(135, 190, 10))  # words per minute (espeak -s; Festival through its duration stretch)

# Festival's English voices in Debian bookworm (all American; the 8 kHz packages are the same
# voices): voice -> (gender, Debian package). The Makefile installs these packages.
FESTIVAL_VOICES = {
    "kal_diphone": ("male", "festvox-kallpc16k"),                # diphone, LPC
    "ked_diphone": ("male", "festvox-kdlpc16k"),                 # diphone, LPC
    "cmu_us_slt_arctic_hts": ("female", "festvox-us-slt-hts"),   # statistical (HTS), 32 kHz
}
# f0 means in Hz per register; a register plays the part of an espeak variant in held-out pairs.
FESTIVAL_REGISTERS = {
    "male": {"low": (80, 85, 90, 95), "mid": (100, 105, 110, 115, 120), "high": (125, 130, 135, 140)},
    "female": {"low": (150, 160, 170), "mid": (180, 190, 200), "high": (210, 220, 230)},
}


@dataclass(frozen=True)
class Speaker:
    speaker_id: str
    language: str
    voice: str        # espeak-ng voice, e.g. "en-gb-scotland"; or a Festival voice, e.g. "kal_diphone"
    variant: str      # espeak-ng variant, e.g. "f3"; or a Festival pitch register, e.g. "low"
    pitch: int        # espeak -p; Festival: f0 mean in Hz
    speed: int        # words per minute
    engine: str = ESPEAK

    @property
    def gender(self) -> str:
        if self.engine == FESTIVAL:
            return FESTIVAL_VOICES[self.voice][0]
        return "female" if self.variant in FEMALE_VARIANTS else "male"

    @property
    def espeak_voice(self) -> str:
        return f"{self.voice}+{self.variant}"

    @property
    def voice_name(self) -> str:
        """How SPEAKERS.TXT and the babble column name the voice."""
        return self.espeak_voice if self.engine == ESPEAK else f"{self.engine}:{self.voice}+{self.variant}"

    def to_dict(self) -> dict:
        fields = {**asdict(self), "gender": self.gender}
        if self.engine == ESPEAK:   # written as before there was a second engine: the default corpus is unchanged
            del fields["engine"]
        return fields


def parse_engines(text: str | None) -> tuple[str, ...]:
    """"espeak-ng,festival" -> ("espeak-ng", "festival"); "espeak" is accepted for espeak-ng."""
    if not text:
        return (ESPEAK,)
    names = [ESPEAK if name.strip() == "espeak" else name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ENGINES]
    if unknown or not names:
        raise UserError(f"unknown engine(s) {', '.join(unknown) or repr(text)}; available: espeak-ng (or espeak), festival")
    return tuple(dict.fromkeys(names))


def draw_speakers(language: str, counts: dict[str, int], rng: random.Random, make_id, training_split: str,
                  engines: tuple[str, ...] = (ESPEAK,),
                  held_out_engines: tuple[str, ...] = ()) -> dict[str, list[Speaker]]:
    """Disjoint speakers per split: {split: [Speaker]} for counts {split: how many}.

    make_id(split, index) names a speaker. The held-out splits are drawn first and the training
    split never uses their voice+variant pairs, so held-out voices stay unheard at any corpus
    size (training repeats its own pairs at other pitches and speeds once it runs out).
    With several engines a split's speakers are shared among them in turn; held_out_engines
    speak in the held-out splits only. Festival speaks English only.
    """
    if engines == (ESPEAK,) and not held_out_engines:
        return _draw(voice_combos(language, ESPEAK), counts, rng, make_id, training_split, language, ESPEAK)
    usable = [e for e in engines if e == ESPEAK or language == "en"]
    per_engine = {engine: {} for engine in usable}
    for split, count in counts.items():
        speaking = [e for e in usable if split != training_split or e not in held_out_engines]
        if not speaking:
            raise UserError(f"no engine left to speak {language!r} in {split} "
                            f"(engines {','.join(engines)}, held out {','.join(held_out_engines) or 'none'})")
        for engine in usable:
            per_engine[engine][split] = 0
        for i in range(count):   # in turn, so the engines share a split evenly
            per_engine[speaking[i % len(speaking)]][split] += 1
    offsets = {split: 0 for split in counts}
    drawn: dict[str, dict[str, list[Speaker]]] = {}
    for engine in usable:
        def engine_id(split, index, start=dict(offsets)):
            return make_id(split, start[split] + index)
        combos = voice_combos(language, engine)
        drawn[engine] = _draw(combos, per_engine[engine], rng, engine_id, training_split, language, engine)
        for split in counts:
            offsets[split] += per_engine[engine][split]
    return {split: [s for engine in usable for s in drawn[engine][split]] for split in counts}


def voice_combos(language: str, engine: str) -> list[tuple]:
    """Every (voice, variant, pitch, speed) an engine offers in a language, in a fixed order."""
    if engine == ESPEAK:
        return list(itertools.product(VOICES[language], MALE_VARIANTS + FEMALE_VARIANTS, PITCHES, SPEEDS))
    return [(voice, register, pitch, speed)
            for voice, (gender, _) in FESTIVAL_VOICES.items()
            for register, pitches in FESTIVAL_REGISTERS[gender].items()
            for pitch in pitches for speed in SPEEDS]


def _draw(combos: list[tuple], counts: dict[str, int], rng: random.Random, make_id, training_split: str,
          language: str, engine: str) -> dict[str, list[Speaker]]:
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
        speakers[split] = [Speaker(make_id(split, i), language, *combo, engine=engine) for i, combo in enumerate(chosen)]
    return {split: speakers[split] for split in counts}
