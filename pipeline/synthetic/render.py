"""Rendering clips in worker processes: speak, resample, record in the session's conditions
(when the corpus has them), encode, write (local or s3://)."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from pipeline import uri as uris
from pipeline.synthetic.acoustics import condition
from pipeline.synthetic.babble import babble_bed
from pipeline.synthetic.engines import resample, speak
from pipeline.synthetic.plan import Clip


def init_worker() -> None:
    """One thread per worker process: the pool, not torch, uses the cores."""
    import torch

    torch.set_num_threads(1)


def encode(audio: np.ndarray, sample_rate: int, audio_format: str) -> bytes:
    audio = np.clip(audio, -1.0, 1.0)
    buffer = io.BytesIO()
    subtype = "PCM_16" if audio_format == "FLAC" else None
    sf.write(buffer, audio, sample_rate, format=audio_format, subtype=subtype)
    return buffer.getvalue()


def render_clips(out_uri: str, clips: list[Clip]) -> list[tuple[str, float]]:
    """Speak, encode and write each clip under out_uri; returns (utt id, seconds) per clip."""
    fs, root = uris.filesystem(out_uri)
    made: set[str] = set()
    results = []
    for clip in clips:
        audio, rate = speak(clip.spoken, clip.speaker)
        seconds = len(audio) / rate
        audio = resample(audio, rate, clip.sample_rate)
        if clip.conditions is not None:
            audio = condition(audio, clip.sample_rate, clip.conditions, clip.utt_id, babble_bed)
        path = f"{root.rstrip('/')}/{clip.rel_path}"
        parent = path.rsplit("/", 1)[0]
        if parent not in made and not uris.is_remote(out_uri):
            fs.makedirs(parent, exist_ok=True)
            made.add(parent)
        fs.pipe_file(path, encode(audio, clip.sample_rate, clip.audio_format))
        results.append((clip.utt_id, seconds))
    return results
