"""Speech from Debian's Festival (`text2wave`): text in, float32 waveform at the voice's own rate out.

A second engine, so that a synthetic speaker is more than espeak-ng's parameters. Festival speaks
English only. Diphone voices: the rate through Festival's duration stretch, the pitch through the
f0 mean its intonation model aims at. HTS voices ignore both: the rate is the HTS engine's speed,
and the pitch a change of playback rate (a speech-rate compensated resampling, which moves the
formants with the pitch, as a smaller or larger vocal tract would).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np
import soundfile as sf

from pipeline.errors import UserError
from pipeline.synthetic.speakers import FESTIVAL_VOICES, Speaker

NATURAL_WPM = 160        # Festival's English voices unstretched, in the words per minute of estimated_seconds
HTS_NATURAL_F0_HZ = 175  # the HTS voice's own f0 mean (measured): a speaker's pitch is a rate change from it
RATE_STEP_HZ = 400       # the played-back rates of HTS speakers are multiples of it


def require_festival() -> str:
    path = shutil.which("text2wave")
    if path is None:
        packages = " ".join(["festival", *sorted({package for _, package in FESTIVAL_VOICES.values()})])
        raise UserError(f"Festival is not installed; run `make setup` (or `apt-get install {packages}`)")
    return path


def festival_version() -> str:
    result = subprocess.run(["festival", "--version"], capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).strip()


def speak(text: str, speaker: Speaker) -> tuple[np.ndarray, int]:
    """The waveform of `text` spoken by `speaker` (float32, mono) and its sample rate."""
    hts = speaker.voice.endswith("_hts")
    shift = speaker.pitch / HTS_NATURAL_F0_HZ if hts else 1.0
    speed = speaker.speed / NATURAL_WPM
    if hts:
        # Spoken slower by the pitch factor, then played faster by it: the pitch moves, the rate stays.
        settings = f"(set! hts_engine_params (append hts_engine_params '((\"-r\" {speed / shift:.4f}))))"
    else:
        settings = (f"(begin (Parameter.set 'Duration_Stretch {1.0 / speed:.4f}) "
                    f"(set! int_lr_params (cons '(target_f0_mean {speaker.pitch}) int_lr_params)))")
    # A file, not stdout: text2wave cannot seek back in a pipe to write the WAV header's sizes.
    with tempfile.TemporaryDirectory(prefix="festival-") as folder:
        path = os.path.join(folder, "speech.wav")
        result = subprocess.run([require_festival(), "-eval", f"(voice_{speaker.voice})", "-eval", settings,
                                 "-o", path], input=text.encode("utf-8"), capture_output=True, check=False)
        if result.returncode != 0 or not os.path.exists(path) or os.path.getsize(path) < 100:
            raise RuntimeError(f"text2wave failed for voice {speaker.voice}: {result.stderr.decode()[:300]}")
        audio, rate = sf.read(path, dtype="float32")
    # A rate in whole steps keeps the resampling to the corpus rate cheap (a small ratio of integers).
    return audio, RATE_STEP_HZ * round(rate * shift / RATE_STEP_HZ)
