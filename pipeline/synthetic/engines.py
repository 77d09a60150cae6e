"""The speech engines behind synthetic speakers: whether they are installed, speech from them,
and resampling it to a corpus's rate."""

from __future__ import annotations

import numpy as np

from pipeline.synthetic import espeak, festival
from pipeline.synthetic.speakers import ESPEAK, FESTIVAL, Speaker


def require_engines(engines: tuple[str, ...]) -> None:
    """A one-line UserError naming the missing engine and how to install it."""
    espeak.require_espeak()   # always, as before: the other languages speak through espeak-ng only
    if FESTIVAL in engines:
        festival.require_festival()


def speak(text: str, speaker: Speaker) -> tuple[np.ndarray, int]:
    """The waveform of `text` spoken by `speaker` (float32, mono) and its sample rate."""
    if speaker.engine == FESTIVAL:
        return festival.speak(text, speaker)
    return espeak.speak(text, speaker), espeak.ESPEAK_RATE


def resample(audio: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    if rate == target_rate:
        return audio
    return AF.resample(torch.from_numpy(audio), rate, target_rate).numpy()
