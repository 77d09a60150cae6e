"""Recording conditions of a synthetic corpus, drawn per session from the seed (`synth --conditions`).

A session is what one recording set-up would cover: a LibriSpeech chapter (speaker + chapter) or a
Common Voice client. Each session gets one Conditions: a channel (band limit and spectral tilt),
additive noise (white, pink, or babble of other voices of the same engine) at an SNR drawn in
5-30 dB, a room (dry, or a synthetic impulse response with a drawn RT60) and a gain.
`pipeline/synthetic/acoustics.py` applies them.

Held out like voices: the (band, noise, reverb) grid is 3 x 3 x 3, and a third of it (9 triples)
is heard only in dev and test. The held-out triples form a Latin square over seeded value orders,
so training still hears every value and every pair of values, never those triples.

The corpus records what was drawn in ROOT/conditions.tsv, one row per session (CONDITION_COLUMNS),
so evaluation can report by condition: a LibriSpeech session is `SPEAKER-CHAPTER` (an utt id less
its last part), a Common Voice session is the client_id; read_conditions and session_of join
them to a reader's utterances.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from pipeline import uri as uris
from pipeline.synthetic.speakers import Speaker, voice_combos

BANDS = ("full", "wideband", "telephone")   # wideband: 50-7000 Hz; telephone: 300-3400 Hz
NOISES = ("white", "pink", "babble")
REVERBS = {"dry": (0.0, 0.0), "room": (0.2, 0.5), "hall": (0.6, 1.2)}   # RT60 range in seconds
SNR_DB = (5.0, 30.0)
TILT_DB_PER_OCTAVE = (-3.0, 3.0)
GAIN_DB = (-12.0, 0.0)   # attenuation only: Festival's diphone voices already reach full scale
BABBLE_TALKERS = (3, 6)
CONDITION_COLUMNS = ("session", "split", "language", "speaker", "band", "tilt_db_per_octave", "noise", "snr_db",
                     "reverb", "rt60_s", "gain_db", "held_out_combination", "seed", "babble")
TABLE = "conditions.tsv"


@dataclass(frozen=True)
class Conditions:
    seed: int                  # the noise, impulse response and babble of the session come from it
    band: str                  # BANDS
    tilt_db_per_octave: float  # > 0 brighter, < 0 duller (about 1 kHz)
    noise: str                 # NOISES
    snr_db: float              # speech to noise power, measured after the channel
    reverb: str                # REVERBS
    rt60_s: float              # 0 when dry
    gain_db: float
    babble: tuple[Speaker, ...] = ()   # talkers of the babble (noise == "babble" only)

    @property
    def combination(self) -> tuple[str, str, str]:
        return (self.band, self.noise, self.reverb)


@dataclass(frozen=True)
class Session:
    key: str           # SPEAKER-CHAPTER or a client_id
    split: str
    speaker: Speaker
    speaker_label: str  # as the corpus files name the speaker


def held_out_combinations(rng: random.Random) -> frozenset[tuple[str, str, str]]:
    """The 9 (band, noise, reverb) triples only dev and test hear."""
    orders = [rng.sample(values, len(values)) for values in (BANDS, NOISES, tuple(REVERBS))]
    # A Latin square: for any two factors' values exactly one value of the third is held out.
    return frozenset((band, noise, reverb) for band in BANDS for noise in NOISES for reverb in REVERBS
                     if (orders[0].index(band) + orders[1].index(noise) + orders[2].index(reverb)) % 3 == 0)


def draw_conditions(sessions: list[Session], training_split: str, rng: random.Random,
                    held_out: frozenset[tuple[str, str, str]]) -> dict[str, Conditions]:
    """{session key: Conditions}; training sessions draw from the other 18 triples.

    Babble talkers are voices of the session's engine and language other than the session's own;
    in training sessions never a held-out speaker's voice, so a held-out voice (or engine) is
    not heard in training even as noise.
    """
    grid = [(b, n, r) for b in BANDS for n in NOISES for r in REVERBS]
    training_triples = [c for c in grid if c not in held_out]
    held_out_triples = [c for c in grid if c in held_out]
    held_out_pairs = {(s.speaker.engine, s.speaker.language, s.speaker.voice, s.speaker.variant)
                      for s in sessions if s.split != training_split}
    drawn = {}
    for session in sessions:
        band, noise, reverb = rng.choice(training_triples if session.split == training_split else held_out_triples)
        low, high = REVERBS[reverb]
        numbers = dict(
            seed=rng.randrange(2**32),
            tilt_db_per_octave=round(rng.uniform(*TILT_DB_PER_OCTAVE), 1),
            snr_db=round(rng.uniform(*SNR_DB), 1),
            rt60_s=round(rng.uniform(low, high), 2),
            gain_db=round(rng.uniform(*GAIN_DB), 1),
        )
        babble = ()
        if noise == "babble":
            avoid = held_out_pairs if session.split == training_split else set()
            babble = _babble_talkers(session.speaker, avoid, rng)
        drawn[session.key] = Conditions(band=band, noise=noise, reverb=reverb, babble=babble, **numbers)
    return drawn


def _babble_talkers(speaker: Speaker, avoid: set[tuple], rng: random.Random) -> tuple[Speaker, ...]:
    """Other voices of the speaker's engine and language, one per voice+variant pair."""
    voices = _voices(speaker.language, speaker.engine)
    others = [pair for pair in voices if pair != (speaker.voice, speaker.variant)]
    pairs = [pair for pair in others if (speaker.engine, speaker.language, *pair) not in avoid] or others
    chosen = rng.sample(pairs, min(len(pairs), rng.randint(*BABBLE_TALKERS)))
    return tuple(Speaker(f"babble{i}", speaker.language, *pair, *rng.choice(voices[pair]), engine=speaker.engine)
                 for i, pair in enumerate(chosen))


@functools.lru_cache(maxsize=None)
def _voices(language: str, engine: str) -> dict[tuple[str, str], tuple[tuple[int, int], ...]]:
    """{(voice, variant): ((pitch, speed), ...)} of an engine in a language, in a fixed order."""
    voices: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for voice, variant, pitch, speed in voice_combos(language, engine):
        voices.setdefault((voice, variant), []).append((pitch, speed))
    return {pair: tuple(settings) for pair, settings in voices.items()}


def conditions_table(sessions: list[Session], drawn: dict[str, Conditions],
                     held_out: frozenset[tuple[str, str, str]]) -> str:
    """ROOT/conditions.tsv: one row per session, in CONDITION_COLUMNS."""
    rows = ["\t".join(CONDITION_COLUMNS)]
    for session in sorted(sessions, key=lambda s: (s.split, s.key)):
        c = drawn[session.key]
        values = {
            "session": session.key, "split": session.split, "language": session.speaker.language,
            "speaker": session.speaker_label, "band": c.band, "tilt_db_per_octave": f"{c.tilt_db_per_octave:.1f}",
            "noise": c.noise, "snr_db": f"{c.snr_db:.1f}", "reverb": c.reverb, "rt60_s": f"{c.rt60_s:.2f}",
            "gain_db": f"{c.gain_db:.1f}", "held_out_combination": str(c.combination in held_out).lower(),
            "seed": str(c.seed),
            "babble": ",".join(f"{t.voice_name} p{t.pitch} s{t.speed}" for t in c.babble),
        }
        rows.append("\t".join(values[column] for column in CONDITION_COLUMNS))
    return "\n".join(rows) + "\n"


def read_conditions(corpus_uri: str) -> dict[str, dict[str, str]]:
    """{session: its conditions.tsv row} of a corpus ({} when it was made without conditions)."""
    fs, root = uris.filesystem(corpus_uri)
    path = f"{root.rstrip('/')}/{TABLE}"
    if not fs.exists(path):
        return {}
    lines = fs.cat_file(path).decode("utf-8").splitlines()
    header = lines[0].split("\t")
    return {row["session"]: row for row in (dict(zip(header, line.split("\t"))) for line in lines[1:] if line)}


def session_of(corpus: str, utt_id: str, speaker: str) -> str:
    """The session key of an utterance as its reader yields it (corpus "librispeech" | "commonvoice")."""
    return utt_id.rsplit("-", 1)[0] if corpus == "librispeech" else speaker
