"""Recording conditions of synthetic corpora (`synth --conditions`): the signal processing
measured on its output, the per-session draw and its held-out combinations, long chapters, and
corpora that stay byte-identical (the default one to what it always was)."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from jobs.cli import main
from pipeline.errors import UserError
from pipeline.readers import read_corpus
from pipeline.synthetic import Voicing, synthesize_corpus
from pipeline.synthetic.acoustics import channel, condition, impulse_response, mix_at_snr, reverberate
from pipeline.synthetic.babble import babble_bed
from pipeline.synthetic.commonvoice import plan_commonvoice
from pipeline.synthetic.conditions import (BANDS, CONDITION_COLUMNS, NOISES, REVERBS, Conditions,
                                           held_out_combinations, read_conditions, session_of)
from pipeline.synthetic.corpus import with_conditions
from pipeline.synthetic.engines import resample, speak
from pipeline.synthetic.librispeech import plan_librispeech
from pipeline.synthetic.plan import estimated_seconds
from pipeline.synthetic.speakers import Speaker

RATE = 16000
# The plan of the default corpus as this synthesiser made it before conditions, engines and chapter
# lengths existed (sentences, ids, paths, voices): a change here changes every default corpus.
DEFAULT_LIBRISPEECH_PLAN = "e7e9dc7cdf626b7cedf9cd9eeac21d258663fc60eaf3ad739b9c5f86a0a45836"
DEFAULT_COMMONVOICE_PLAN = "d182a12e17985b587ea46a31287a00397a142d870633e5dcc2e6f2c94afeaa9e"


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def plan_hash(clips) -> str:
    rows = [(c.rel_path, c.utt_id, c.split, c.spoken, c.transcript, c.sample_rate, c.audio_format,
             c.speaker.to_dict()) for c in clips]
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum((noisy - clean.astype(np.float64)) ** 2)))


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """A real synthetic utterance at 16 kHz (espeak-ng)."""
    speaker = Speaker("1", "en", "en-us", "m3", 50, 160)
    audio, rate = speak("the old man carried a heavy box to the station", speaker)
    return resample(audio, rate, RATE).astype(np.float64)


def conditions_of(**changes) -> Conditions:
    base = Conditions(seed=7, band="full", tilt_db_per_octave=0.0, noise="white", snr_db=15.0, reverb="dry",
                      rt60_s=0.0, gain_db=0.0)
    return replace(base, **changes)


def band_energy_fraction(audio: np.ndarray, low: float, high: float) -> float:
    frequencies, power = signal.welch(audio, fs=RATE, nperseg=2048)
    inside = (frequencies >= low) & (frequencies <= high)
    return float(power[inside].sum() / power.sum())


@pytest.mark.parametrize("noise,band,reverb,snr", [
    ("white", "full", "dry", 5.0), ("pink", "telephone", "room", 12.3), ("babble", "wideband", "hall", 27.5),
    ("babble", "telephone", "dry", 8.0)])
def test_measured_snr_is_the_drawn_snr(speech, noise, band, reverb, snr):
    talkers = (Speaker("babble0", "en", "en-gb", "f2", 60, 150), Speaker("babble1", "en", "en-029", "m5", 40, 175),
               Speaker("babble2", "en", "en-us", "klatt", 50, 140)) if noise == "babble" else ()
    low, high = REVERBS[reverb]
    drawn = conditions_of(noise=noise, band=band, reverb=reverb, rt60_s=round((low + high) / 2, 2),
                          snr_db=snr, tilt_db_per_octave=1.5, gain_db=-6.0, babble=talkers)
    noisy = condition(speech, RATE, drawn, "1-2-0000", babble_bed)
    clean = condition(speech, RATE, replace(drawn, snr_db=math.inf), "1-2-0000", babble_bed)
    assert noisy.shape == speech.shape and noisy.dtype == np.float32
    assert abs(measured_snr_db(clean, noisy) - snr) < 1.0
    # Deterministic: the same utterance gets the same noise; another utterance other noise.
    assert np.array_equal(noisy, condition(speech, RATE, drawn, "1-2-0000", babble_bed))
    other = condition(speech, RATE, drawn, "1-2-0001", babble_bed)
    assert not np.array_equal(noisy, other) and abs(measured_snr_db(clean, other) - snr) < 1.0


def test_white_noise_level_read_from_the_spectrum():
    """An independent reading of the SNR: a 1 kHz tone in white noise, noise power from the floor."""
    t = np.arange(3 * RATE) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 1000 * t)
    noisy = condition(tone, RATE, conditions_of(snr_db=10.0), "tone")
    frequencies, power = signal.welch(noisy.astype(np.float64), fs=RATE, nperseg=4096)
    floor = np.median(power[(frequencies > 1500) & (frequencies < 7500)])
    noise_power = floor * RATE / 2
    assert abs(10 * np.log10(np.mean(tone ** 2) / noise_power) - 10.0) < 1.0


def test_telephone_band_removes_low_and_high_energy():
    white = np.random.default_rng(0).standard_normal(4 * RATE)
    assert band_energy_fraction(white, 0, 250) > 0.02 and band_energy_fraction(white, 4000, 8000) > 0.4
    phone = channel(white, RATE, "telephone", 0.0)
    assert band_energy_fraction(phone, 0, 200) < 1e-3
    assert band_energy_fraction(phone, 5000, 8000) < 1e-3
    assert band_energy_fraction(phone, 250, 4000) > 0.97   # what is left outside 300-3400 Hz is the filter's skirt
    wide = channel(white, RATE, "wideband", 0.0)
    assert band_energy_fraction(wide, 50, 7000) > 0.93 and band_energy_fraction(wide, 0, 30) < 1e-3
    # The whole recording chain: noise in the room is band-limited by the line too.
    recorded = condition(white * 0.1, RATE, conditions_of(band="telephone", noise="pink", snr_db=5.0), "u")
    assert band_energy_fraction(recorded.astype(np.float64), 250, 4000) > 0.97
    assert band_energy_fraction(recorded.astype(np.float64), 0, 200) < 1e-3


def test_tilt_is_decibels_per_octave():
    white = np.random.default_rng(1).standard_normal(8 * RATE)
    tilted = channel(white, RATE, "full", 3.0)
    frequencies, before = signal.welch(white, fs=RATE, nperseg=4096)
    _, after = signal.welch(tilted, fs=RATE, nperseg=4096)
    gain = 10 * np.log10(after / before)
    at = {f: gain[np.argmin(abs(frequencies - f))] for f in (500, 1000, 2000, 4000)}
    assert abs(at[1000]) < 0.5 and abs(at[2000] - 3) < 0.7 and abs(at[4000] - 6) < 0.7 and abs(at[500] + 3) < 0.7


def test_reverb_impulse_response_decays_at_its_rt60():
    for rt60 in (0.3, 0.9):
        response = impulse_response(rt60, RATE, seed=3)
        assert np.array_equal(response, impulse_response(rt60, RATE, seed=3))
        # Schroeder's backward integration: the energy decay curve falls 60 dB in rt60.
        decay = np.cumsum(response[::-1] ** 2)[::-1]
        decay_db = 10 * np.log10(decay / decay[0])
        window = (decay_db < -5) & (decay_db > -25)   # fit on -5..-25 dB (T20), as acoustics does
        slope = np.polyfit(np.arange(len(decay_db))[window] / RATE, decay_db[window], 1)[0]
        assert abs(-60 / slope - rt60) < 0.15 * rt60
        energy = [np.sum(response[i:i + RATE // 20] ** 2) for i in range(1, len(response) - RATE // 20, RATE // 20)]
        assert all(later < earlier for earlier, later in zip(energy, energy[1:]))
    dry = np.random.default_rng(2).standard_normal(RATE)
    wet = reverberate(dry, impulse_response(0.5, RATE, seed=3))
    assert wet.shape == dry.shape and abs(np.sqrt(np.mean(wet ** 2) / np.mean(dry ** 2)) - 1) < 1e-6


def test_mix_at_snr_without_noise_is_the_speech():
    speech = np.random.default_rng(3).standard_normal(1000)
    assert np.array_equal(mix_at_snr(speech, np.ones(1000), math.inf), speech)
    assert abs(measured_snr_db(speech, mix_at_snr(speech, np.random.default_rng(4).standard_normal(1000), 20.0)) - 20) < 1e-6


def test_held_out_combinations_are_a_latin_square():
    for seed in range(5):
        held_out = held_out_combinations(random.Random(seed))
        grid = {(b, n, r) for b in BANDS for n in NOISES for r in REVERBS}
        training = grid - held_out
        assert len(held_out) == 9 and len(training) == 18
        # Training hears every value and every pair of values; only the triples are new.
        for i, j in ((0, 1), (0, 2), (1, 2)):
            assert {(c[i], c[j]) for c in training} == {(c[i], c[j]) for c in grid}
    assert len({held_out_combinations(random.Random(seed)) for seed in range(10)}) > 1


def test_sessions_draw_reproducibly_and_held_out_splits_draw_unheard_combinations():
    clips, _ = plan_librispeech(2.0, None, seed=4)
    conditioned, table, summary = with_conditions("librispeech", clips, seed=4)
    again, table_again, _ = with_conditions("librispeech", clips, seed=4)
    assert conditioned == again and table == table_again
    assert [c.spoken for c in conditioned] == [c.spoken for c in clips]       # the same speech, conditioned
    rows = list(csv.DictReader(table.splitlines(), delimiter="\t"))
    assert tuple(rows[0]) == CONDITION_COLUMNS
    sessions = {c.utt_id.rsplit("-", 1)[0] for c in clips}
    assert {r["session"] for r in rows} == sessions and len(rows) == len(sessions)
    held_out = {tuple(c) for c in summary["held_out_combinations"]}
    by_split: dict[str, set] = {}
    for clip in conditioned:
        by_split.setdefault(clip.split, set()).add(clip.conditions.combination)
        session = clip.utt_id.rsplit("-", 1)[0]
        assert next(r for r in rows if r["session"] == session)["band"] == clip.conditions.band
    assert not by_split["train-clean-100"] & held_out
    assert by_split["dev-clean"] <= held_out and by_split["test-clean"] <= held_out
    assert len(by_split["train-clean-100"]) > 12                              # training hears many triples
    drawn = [c.conditions for c in conditioned]
    assert all(5 <= d.snr_db <= 30 for d in drawn) and {d.noise for d in drawn} == set(NOISES)
    assert all((d.rt60_s == 0) == (d.reverb == "dry") for d in drawn)
    # Babble talkers are other voices, never a held-out speaker's voice in a training session.
    held_out_voices = {(c.speaker.voice, c.speaker.variant) for c in clips if c.split != "train-clean-100"}
    for clip in conditioned:
        talkers = {(t.voice, t.variant) for t in clip.conditions.babble}
        assert (clip.conditions.noise == "babble") == bool(talkers)
        assert (clip.speaker.voice, clip.speaker.variant) not in talkers
        if clip.split == "train-clean-100":
            assert not talkers & held_out_voices
    other, _, _ = with_conditions("librispeech", clips, seed=5)
    assert [c.conditions for c in other] != drawn


def test_commonvoice_sessions_are_clients():
    clips, _ = plan_commonvoice(None, 4, ["en", "de"], seed=2)
    conditioned, table, summary = with_conditions("commonvoice", clips, seed=2)
    rows = list(csv.DictReader(table.splitlines(), delimiter="\t"))
    clients = Counter((r["language"], r["split"]) for r in rows)
    assert set(clients) == {(lang, split) for lang in ("en", "de") for split in ("train", "dev", "test")}
    assert all(len(r["session"]) == 128 and r["session"] == r["speaker"] for r in rows)
    assert sum(summary["sessions"].values()) == len(rows)
    for clip in conditioned:   # every clip of a client shares its conditions
        assert clip.conditions == next(c.conditions for c in conditioned if c.speaker == clip.speaker)


def test_long_chapters_for_test_speakers():
    voicing = Voicing(test_minutes_per_chapter=10)
    clips, speakers = plan_librispeech(1.0, None, seed=3, voicing=voicing)
    minutes: Counter = Counter()
    chapters: dict[str, set] = {}
    for clip in clips:
        minutes[(clip.split, clip.speaker.speaker_id)] += estimated_seconds(clip.spoken, clip.speaker) / 60
        chapters.setdefault(clip.speaker.speaker_id, set()).add(clip.utt_id.split("-")[1])
    test = [s.speaker_id for s in speakers["test-clean"]]
    assert len(test) == 2 and all(10 <= minutes[("test-clean", s)] <= 11.5 for s in test)
    assert all(len(chapters[s]) == 1 for s in test)
    assert max(minutes[("train-clean-100", s.speaker_id)] for s in speakers["train-clean-100"]) < 2
    everywhere, speakers = plan_librispeech(1.0, None, seed=3, voicing=Voicing(minutes_per_chapter=3))
    assert len(speakers["train-clean-100"]) == 16 and len(speakers["dev-clean"]) == 2
    assert plan_librispeech(1.0, None, seed=3, voicing=voicing)[0] == clips


def test_a_longer_test_split_leaves_train_and_dev_as_they_were():
    """--test-hours with as many test speakers as before: the same train and dev clips, the same
    test speakers, chapters and acoustic conditions, only longer test chapters (for long-form
    evaluation of models already trained on the corpus)."""
    short = Voicing(test_minutes_per_chapter=1.2)            # 0.1 h of test: 5 chapters of 1.2 min
    long = Voicing(test_minutes_per_chapter=12, test_hours=1.0)
    before, speakers_before = plan_librispeech(1.0, None, seed=3, voicing=short)
    after, speakers_after = plan_librispeech(1.0, None, seed=3, voicing=long)
    held = [c for c in before if c.split != "test-clean"]
    assert held and held == [c for c in after if c.split != "test-clean"]
    assert speakers_after == speakers_before and len(speakers_after["test-clean"]) == 5

    def test_chapters(clips):
        return {c.utt_id.rsplit("-", 1)[0] for c in clips if c.split == "test-clean"}
    assert test_chapters(after) == test_chapters(before)
    minutes: Counter = Counter()
    for clip in after:
        if clip.split == "test-clean":
            minutes[clip.speaker.speaker_id] += estimated_seconds(clip.spoken, clip.speaker) / 60
    assert len(minutes) == 5 and all(12 <= m <= 13.5 for m in minutes.values())
    conditions_before = {c.utt_id.rsplit("-", 1)[0]: c.conditions for c in with_conditions("librispeech", before, 3)[0]}
    conditions_after = {c.utt_id.rsplit("-", 1)[0]: c.conditions for c in with_conditions("librispeech", after, 3)[0]}
    assert conditions_after == conditions_before


def test_default_plan_is_unchanged():
    assert plan_hash(plan_librispeech(None, 3, seed=5)[0]) == DEFAULT_LIBRISPEECH_PLAN
    assert plan_hash(plan_commonvoice(None, 2, ["en", "fr"], seed=1)[0]) == DEFAULT_COMMONVOICE_PLAN


def test_conditioned_corpus_is_byte_identical_from_its_seed_and_the_default_corpus_is_clean(tmp_path):
    """Seed 5 draws babble, white noise, all three bands, dry, room and hall for its six chapters."""
    clean = tmp_path / "clean"
    summary = synthesize_corpus("librispeech", str(clean), utterances_per_split=3, seed=5)
    marker = json.loads((clean / "SYNTHETIC.json").read_text())
    assert not (clean / "conditions.tsv").exists() and "conditions" not in marker
    assert set(marker["settings"]) == {"layout", "hours", "utterances_per_split", "languages", "seed",
                                       "generator_version", "espeak_ng"}
    assert all("engine" not in s for s in marker["speakers"].values())
    explicit = tmp_path / "explicit"
    synthesize_corpus("librispeech", str(explicit), utterances_per_split=3, seed=5, conditions=False, voicing=Voicing())
    assert tree_bytes(explicit) == tree_bytes(clean)

    first, second = tmp_path / "conditioned", tmp_path / "again"
    conditioned = synthesize_corpus("librispeech", str(first), utterances_per_split=3, seed=5, conditions=True)
    synthesize_corpus("librispeech", str(second), utterances_per_split=3, seed=5, conditions=True)
    assert tree_bytes(first) == tree_bytes(second)
    assert conditioned["utterances"] == summary["utterances"]
    clean_tree, conditioned_tree = tree_bytes(clean), tree_bytes(first)
    for rel, data in clean_tree.items():
        if rel.endswith(".trans.txt"):
            assert conditioned_tree[rel] == data                       # same speech, same transcripts
        elif rel.endswith(".flac"):
            before, _ = sf.read(clean / rel)
            after, rate = sf.read(first / rel)
            assert rate == RATE and len(after) == len(before) and not np.allclose(after, before)
    rows = list(csv.DictReader((first / "conditions.tsv").read_text().splitlines(), delimiter="\t"))
    assert len(rows) == sum(conditioned["conditions"]["sessions"].values()) >= 3
    assert {r["split"] for r in rows} == {"train-clean-100", "dev-clean", "test-clean"}
    assert all(r["held_out_combination"] == str(r["split"] != "train-clean-100").lower() for r in rows)
    assert conditioned["settings"]["conditions"] is True
    table = read_conditions(str(first))
    records = list(read_corpus("librispeech", str(first)))
    assert len(records) == 9 and {session_of("librispeech", r.utt_id, r.speaker) for r in records} == set(table)
    assert read_conditions(str(clean)) == {}
    assert synthesize_corpus("librispeech", str(first), utterances_per_split=3, seed=5, conditions=True)["skipped"]
    with pytest.raises(UserError, match="other settings"):
        synthesize_corpus("librispeech", str(clean), utterances_per_split=3, seed=5, conditions=True)


def test_cli_flags_and_their_errors(tmp_path, capsys):
    out = tmp_path / "cv"
    assert main(["synth", "--layout", "commonvoice", "--out", str(out), "--utterances-per-split", "1",
                 "--languages", "es", "--conditions"]) == 0
    printed = capsys.readouterr().out
    assert "conditions of 3 sessions in conditions.tsv" in printed
    assert len((out / "conditions.tsv").read_text().splitlines()) == 4
    base = ["synth", "--layout", "librispeech", "--out", str(tmp_path / "x")]
    cases = [
        (["--utterances-per-split", "2", "--minutes-per-chapter", "3"], "cannot be used with --utterances-per-split"),
        (["--test-minutes-per-chapter", "0"], "more than 0"),
        (["--test-hours", "0"], "--test-hours must be more than 0"),
        (["--utterances-per-split", "2", "--test-hours", "3"], "cannot be used with --utterances-per-split"),
        (["--minutes-per-chapter", "1000"], "at most 240"),
        (["--engines", "espeak,flite"], "unknown engine(s) flite"),
        (["--held-out-engines", "festival"], "must also be in --engines"),
        (["--engines", "espeak", "--held-out-engines", "espeak"], "every engine is held out"),
    ]
    for argv, message in cases:
        assert main([*base, *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err and "Traceback" not in err
    assert main(["synth", "--layout", "commonvoice", "--out", str(tmp_path / "y"), "--languages", "de",
                 "--engines", "festival"]) == 2
    assert "English only" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.integration
def test_conditioned_corpus_on_a_pool_matches_in_process(tmp_path, monkeypatch):
    """Seed 3 draws babble, pink noise, a telephone band, a room and a hall for its three clients."""
    from pipeline.synthetic import corpus as corpus_module

    serial = tmp_path / "serial"
    synthesize_corpus("commonvoice", str(serial), utterances_per_split=1, languages=["fr"], seed=3, workers=1,
                      conditions=True)
    monkeypatch.setattr(corpus_module, "IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(corpus_module, "BATCH", 2)
    pooled = tmp_path / "pooled"
    summary = synthesize_corpus("commonvoice", str(pooled), utterances_per_split=1, languages=["fr"], seed=3,
                                workers=2, conditions=True)
    assert summary["workers"] == 2
    assert tree_bytes(pooled) == tree_bytes(serial)
