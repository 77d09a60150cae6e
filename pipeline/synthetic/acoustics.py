"""Applying a session's Conditions to one utterance: room, channel, noise, gain.

    speech --room--> reverberant speech --channel--> s          (channel: band limit, then tilt)
    noise  ----------------------------> --channel--> n, scaled so that power(s) / power(n) = SNR
    out = gain * (s + n)

The noise goes through the same channel as the speech (it is in the room, not on the wire), and
is scaled after the channel, so the written file has the drawn SNR whatever the band. The room's
impulse response comes from the session's seed (one room per session); the noise of each
utterance from the seed and the utterance id. Everything is deterministic.
"""

from __future__ import annotations

import zlib
from typing import Callable

import numpy as np
from scipy import signal

from pipeline.synthetic.conditions import Conditions

BAND_EDGES_HZ = {"wideband": (50.0, 7000.0), "telephone": (300.0, 3400.0)}
BAND_ORDER = 8           # Butterworth order per edge: ~48 dB per octave outside the band, as steep as a phone line
TILT_PIVOT_HZ = 1000.0   # the tilt leaves this frequency's level unchanged
TILT_FLOOR_HZ = 50.0     # below it the tilt stops growing (no gain towards DC)
DECAY_DB = 60.0          # RT60: the time the room's response takes to fall by 60 dB


def condition(audio: np.ndarray, rate: int, conditions: Conditions, utterance: str,
              babble_bed: Callable[[Conditions, int], np.ndarray] | None = None) -> np.ndarray:
    """The utterance as recorded in the session's conditions (float32, same length as audio).

    babble_bed(conditions, rate): the session's babble, needed when conditions.noise == "babble".
    """
    rng = np.random.default_rng([conditions.seed, zlib.crc32(utterance.encode("utf-8"))])
    speech = audio.astype(np.float64)
    if conditions.rt60_s > 0:
        speech = reverberate(speech, impulse_response(conditions.rt60_s, rate, conditions.seed))
    speech = channel(speech, rate, conditions.band, conditions.tilt_db_per_octave)
    noise = channel(noise_signal(conditions, len(speech), rate, rng, babble_bed), rate,
                    conditions.band, conditions.tilt_db_per_octave)
    mixed = mix_at_snr(speech, noise, conditions.snr_db)
    return (mixed * 10.0 ** (conditions.gain_db / 20.0)).astype(np.float32)


def impulse_response(rt60_s: float, rate: int, seed: int) -> np.ndarray:
    """A synthetic room: a direct path, then Gaussian noise under an exponential decay of 60 dB in rt60_s.

    The tail carries as much energy as the direct path (a direct-to-reverberant ratio of 0 dB,
    a talker a metre or two from the microphone).
    """
    rng = np.random.default_rng([seed, 0x52454642])   # its own stream: the same room for every utterance
    t = np.arange(1, int(rt60_s * rate)) / rate
    tail = rng.standard_normal(len(t)) * 10.0 ** (-DECAY_DB / 20.0 * t / rt60_s)
    tail /= np.sqrt(np.sum(tail ** 2))
    return np.concatenate([[1.0], tail])


def reverberate(speech: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Convolved and cut to the input's length (the transcript's timing and the clip length stay),
    at the input's power (the room changes the sound, not the level)."""
    wet = signal.fftconvolve(speech, response)[: len(speech)]
    return wet * _rms(speech) / max(_rms(wet), 1e-12)


def channel(audio: np.ndarray, rate: int, band: str, tilt_db_per_octave: float) -> np.ndarray:
    """Band limit (Butterworth band-pass) then spectral tilt (a gain of tilt dB per octave about 1 kHz)."""
    if band in BAND_EDGES_HZ:
        low, high = BAND_EDGES_HZ[band]
        high = min(high, 0.45 * rate)   # a band edge must stay below Nyquist
        sos = signal.butter(BAND_ORDER, [low, high], btype="bandpass", fs=rate, output="sos")
        audio = signal.sosfilt(sos, audio)
    elif band != "full":
        raise ValueError(f"unknown band {band!r}")
    if tilt_db_per_octave:
        spectrum = np.fft.rfft(audio)
        frequencies = np.maximum(np.fft.rfftfreq(len(audio), 1.0 / rate), TILT_FLOOR_HZ)
        spectrum *= 10.0 ** (tilt_db_per_octave * np.log2(frequencies / TILT_PIVOT_HZ) / 20.0)
        audio = np.fft.irfft(spectrum, n=len(audio))
    return audio


def noise_signal(conditions: Conditions, length: int, rate: int, rng: np.random.Generator,
                 babble_bed: Callable[[Conditions, int], np.ndarray] | None) -> np.ndarray:
    """length samples of the session's noise type, at unit power before the channel."""
    if conditions.noise == "white":
        return rng.standard_normal(length)
    if conditions.noise == "pink":
        # 1/f power: white noise's spectrum shaped by 1/sqrt(f) (the DC bin set to 0).
        spectrum = np.fft.rfft(rng.standard_normal(length))
        frequencies = np.fft.rfftfreq(length, 1.0 / rate)
        spectrum[1:] /= np.sqrt(frequencies[1:])
        spectrum[0] = 0.0
        pink = np.fft.irfft(spectrum, n=length)
        return pink / max(_rms(pink), 1e-12)
    if conditions.noise == "babble":
        if babble_bed is None:
            raise ValueError("babble noise needs the session's babble bed")
        bed = babble_bed(conditions, rate)
        start = int(rng.integers(len(bed)))   # a different stretch of the same crowd per utterance
        return np.take(bed, np.arange(start, start + length), mode="wrap")
    raise ValueError(f"unknown noise {conditions.noise!r}")


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise scaled so that power(speech) / power(scaled noise) is snr_db (inf: no noise)."""
    if np.isinf(snr_db):
        return speech.copy()
    scale = _rms(speech) / max(_rms(noise), 1e-12) * 10.0 ** (-snr_db / 20.0)
    return speech + scale * noise


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0
