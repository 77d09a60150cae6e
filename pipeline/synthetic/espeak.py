"""Speech from Debian's espeak-ng: text in, float32 waveform at espeak's 22050 Hz out."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import soundfile as sf

from pipeline.errors import UserError
from pipeline.synthetic.speakers import Speaker

ESPEAK_RATE = 22050


def require_espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise UserError("espeak-ng is not installed; run `make setup` (or `apt-get install espeak-ng`)")
    return path


def espeak_version() -> str:
    out = subprocess.run([require_espeak(), "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("Data at")[0].strip()


def speak(text: str, speaker: Speaker) -> np.ndarray:
    """The waveform of `text` spoken by `speaker` (float32, mono, ESPEAK_RATE)."""
    result = subprocess.run(
        ["espeak-ng", "--stdout", "-b", "1", "--stdin", "-v", speaker.espeak_voice,
         "-p", str(speaker.pitch), "-s", str(speaker.speed)],
        input=text.encode("utf-8"), capture_output=True, check=False,
    )
    if result.returncode != 0 or len(result.stdout) < 100:
        raise RuntimeError(f"espeak-ng failed for voice {speaker.espeak_voice}: {result.stderr.decode()[:300]}")
    audio, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    if rate != ESPEAK_RATE:
        raise RuntimeError(f"espeak-ng wrote {rate} Hz, expected {ESPEAK_RATE}")
    return audio
