"""Audio continuation from a generator: prompt audio -> audio tokens -> sampled tokens -> waveform.

The tokens are the run's own audio tokenizer's (μ-law or k-means, from the split's manifest), and
so is the decoding back to audio. With `stream` the WAV is written chunk by chunk as the tokens
are sampled (one LaCT chunk at a time), so a long generation is audible before it ends.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import torch

from jobs.inference.model import InferenceModel
from pipeline import uri as uris
from pipeline.audio import AudioError, load_audio
from pipeline.errors import UserError
from pipeline.files import write_atomic

SILENT_PROMPT_SECONDS = 0.05


@dataclass
class GenerateOptions:
    seconds: float
    temperature: float = 1.0
    top_k: int | None = None
    seed: int = 0
    stream: bool = False
    include_prompt: bool = False


def prompt_tokens(model: InferenceModel, tokenizer, prompt_audio: str | None) -> torch.Tensor:
    """[1, P] token ids of the prompt audio, or of a moment of silence when there is none."""
    if prompt_audio:
        try:
            audio = load_audio(prompt_audio, max_seconds=float("inf"))
        except AudioError as exc:
            raise UserError(f"--prompt-audio {prompt_audio}: {exc}") from None
        wave = torch.from_numpy(audio.waveform)
    else:
        wave = torch.zeros(int(SILENT_PROMPT_SECONDS * 16000))
    tokens = tokenizer.encode(wave).long().flatten()
    if tokens.numel() == 0:
        raise UserError("the prompt audio is too short to give a single audio token")
    return tokens[None]


def generate(model: InferenceModel, out_uri: str, options: GenerateOptions,
             prompt_audio: str | None = None) -> dict:
    """Writes a mono WAV at the tokenizer's sample rate; returns {seconds, tokens, sample_rate}."""
    if options.seconds <= 0:
        raise UserError(f"--seconds must be > 0, got {options.seconds}")
    tokenizer = model.audio_tokenizer()
    prompt = prompt_tokens(model, tokenizer, prompt_audio)
    new_tokens = max(1, round(options.seconds * tokenizer.rate_hz))
    generator = torch.Generator().manual_seed(options.seed)
    sampling = dict(temperature=options.temperature, top_k=options.top_k, generator=generator)
    rate = int(tokenizer.sample_rate)
    max_length = prompt.shape[1] + new_tokens

    def decode(tokens: torch.Tensor) -> np.ndarray:
        return np.asarray(tokenizer.decode(tokens.flatten()), dtype=np.float32).reshape(-1)

    if options.stream:
        if uris.is_remote(out_uri):
            raise UserError("--stream writes a local file; give a local --out")
        with sf.SoundFile(out_uri, "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
            if options.include_prompt:
                f.write(decode(prompt))
            for piece in model.model.generate_streaming(prompt, max_length, **sampling):
                f.write(decode(piece))
                f.flush()
        written = sf.info(out_uri).duration
    else:
        tokens = model.model.generate(prompt, max_length, **sampling)
        wave = decode(tokens if options.include_prompt else tokens[:, prompt.shape[1]:])
        sink = io.BytesIO()
        sf.write(sink, wave, rate, format="WAV", subtype="PCM_16")
        write_atomic(out_uri, sink.getvalue())
        written = len(wave) / rate
    return {"seconds": written, "tokens": new_tokens, "prompt_tokens": int(prompt.shape[1]), "sample_rate": rate}
