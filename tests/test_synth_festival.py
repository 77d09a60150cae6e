"""Festival as a second speech engine: its voices, pitch and rate, speakers shared between engines,
and an engine held out of training."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest

from pipeline.synthetic import Voicing, parse_engines, synthesize_corpus
from pipeline.synthetic.festival import speak
from pipeline.synthetic.speakers import ESPEAK, FESTIVAL, FESTIVAL_VOICES, Speaker, draw_speakers

needs_festival = pytest.mark.skipif(shutil.which("text2wave") is None,
                                    reason="Festival's text2wave is not installed (make setup installs it)")
SENTENCE = "the young teacher found a golden key in the garden"


def f0_hz(audio: np.ndarray, rate: int) -> float:
    """Median f0 of the voiced frames, from the autocorrelation peak in 60-400 Hz."""
    frame, hop = int(0.04 * rate), int(0.01 * rate)
    estimates, loud = [], 0.3 * np.sqrt(np.mean(audio ** 2))
    for start in range(0, len(audio) - frame, hop):
        x = audio[start:start + frame] - audio[start:start + frame].mean()
        if np.sqrt(np.mean(x ** 2)) < loud:   # silence and weak consonants
            continue
        corr = np.correlate(x, x, "full")[frame - 1:]
        low, high = rate // 400, rate // 60
        lag = low + int(np.argmax(corr[low:high]))
        if corr[lag] > 0.5 * corr[0]:
            estimates.append(rate / lag)
    return float(np.median(estimates))


@needs_festival
@pytest.mark.parametrize("voice", sorted(FESTIVAL_VOICES))
def test_every_festival_voice_speaks_at_its_pitch_and_rate(voice):
    gender = FESTIVAL_VOICES[voice][0]
    low_pitch, high_pitch = (90, 135) if gender == "male" else (160, 230)
    slow, rate = speak(SENTENCE, Speaker("1", "en", voice, "low", low_pitch, 135, FESTIVAL))
    assert slow.dtype == np.float32 and rate >= 16000 and 0.01 < np.abs(slow).max() <= 1.0
    fast, _ = speak(SENTENCE, Speaker("1", "en", voice, "low", low_pitch, 185, FESTIVAL))
    assert 1.2 < len(slow) / len(fast) < 1.6                                   # 185 / 135 = 1.37
    high, high_rate = speak(SENTENCE, Speaker("1", "en", voice, "high", high_pitch, 135, FESTIVAL))
    assert f0_hz(high, high_rate) > 1.2 * f0_hz(slow, rate)
    assert abs(len(high) / high_rate - len(slow) / rate) < 0.15 * len(slow) / rate   # the pitch keeps the rate
    assert np.array_equal(speak(SENTENCE, Speaker("1", "en", voice, "low", low_pitch, 135, FESTIVAL))[0], slow)


def test_speakers_shared_between_engines_and_an_engine_held_out():
    counts = {"train": 20, "dev": 4, "test": 5}
    make_id = lambda split, i: f"{split}{i}"   # noqa: E731
    shared = draw_speakers("en", counts, random.Random(0), make_id, "train", (ESPEAK, FESTIVAL))
    assert {k: len(v) for k, v in shared.items()} == counts
    for split, group in shared.items():
        engines = [s.engine for s in group]
        assert abs(engines.count(ESPEAK) - engines.count(FESTIVAL)) <= 1
        assert len({s.speaker_id for s in group}) == len(group)
    for engine in (ESPEAK, FESTIVAL):   # held-out voices per engine, as with espeak alone
        train = {(s.voice, s.variant) for s in shared["train"] if s.engine == engine}
        assert not train & {(s.voice, s.variant) for split in ("dev", "test") for s in shared[split] if s.engine == engine}
    held = draw_speakers("en", counts, random.Random(0), make_id, "train", (ESPEAK, FESTIVAL), (FESTIVAL,))
    assert all(s.engine == ESPEAK for s in held["train"]) and len(held["train"]) == 20
    assert {s.engine for s in held["test"]} == {ESPEAK, FESTIVAL} and {s.engine for s in held["dev"]} == {ESPEAK, FESTIVAL}
    german = draw_speakers("de", counts, random.Random(0), make_id, "train", (ESPEAK, FESTIVAL), (FESTIVAL,))
    assert all(s.engine == ESPEAK for group in german.values() for s in group)   # Festival speaks English only
    assert draw_speakers("en", counts, random.Random(0), make_id, "train") == draw_speakers(
        "en", counts, random.Random(0), make_id, "train", (ESPEAK,))
    assert parse_engines("espeak, festival") == (ESPEAK, FESTIVAL) and parse_engines(None) == (ESPEAK,)


@needs_festival
def test_corpus_with_festival_held_out_and_conditions(tmp_path):
    # Festival first: with one speaker a split, dev and test get a Festival voice.
    voicing = Voicing(engines=(FESTIVAL, ESPEAK), held_out_engines=(FESTIVAL,))
    out, again = tmp_path / "corpus", tmp_path / "again"
    summary = synthesize_corpus("librispeech", str(out), utterances_per_split=1, seed=3, conditions=True,
                                voicing=voicing)
    synthesize_corpus("librispeech", str(again), utterances_per_split=1, seed=3, conditions=True, voicing=voicing)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((out / f).read_bytes() == (again / f).read_bytes() for f in files)
    engines = {split: {s["engine"] if "engine" in s else ESPEAK for s in summary["speakers"].values() if s["split"] == split}
               for split in summary["splits"]}
    assert engines == {"train-clean-100": {ESPEAK}, "dev-clean": {FESTIVAL}, "test-clean": {FESTIVAL}}
    marker = json.loads((out / "SYNTHETIC.json").read_text())
    assert marker["settings"]["voicing"]["held_out_engines"] == [FESTIVAL] and "festival" in marker["settings"]
    speakers_txt = (out / "SPEAKERS.TXT").read_text()
    assert "| festival:" in speakers_txt
    assert speakers_txt.splitlines()[0].endswith("; festival:voice+register, f0 Hz, speed")
    assert "festival:" not in "".join(line.split("\t")[-1] for line in (out / "conditions.tsv").read_text().splitlines()
                                      if "\ttrain-clean-100\t" in line)
