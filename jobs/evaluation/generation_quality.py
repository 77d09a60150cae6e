"""Quality of an audio-token generator and of its tokenizer.
- Per-position NLL: the bits of predicting each token from the ones before it, in one forward
  pass (position_nll.py bins it over long single-speaker sequences).
- Tokenizer round trip: the split's original audio (found through the preprocessing summary
  beside the split) encoded and decoded by the split's audio tokenizer, scored against the
  original with PESQ (wide band, 16 kHz) and STOI. A model-free ceiling on generated quality.
- Continuation samples: a prompt of the split's audio tokens continued by the model, saved as
  a WAV file and a spectrogram PNG (prompt end marked).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from jobs.evaluation.data import EvalSplit
from pipeline import uri as uris
from pipeline.audio import load_audio, resample
from pipeline.audio_tokenizer import load_audio_tokenizer
from pipeline.manifest import SUMMARY
from pipeline.readers import read_corpus
from pipeline.records import Utterance
from pipeline.text_tokenizer import output_root

PESQ_RATE = 16000

class NotMeasured(Exception):
    """A metric that cannot be measured here; the message says why."""

# ------------------------------------------------------------------------------ per-position NLL
@torch.no_grad()
def position_nll_bits(model, tokens: torch.Tensor) -> torch.Tensor:
    """tokens [L] -> bits of predicting token t+1 from tokens <= t, [L-1]; entry i has context i+1."""
    logits = model(tokens[None])[0, :-1].float()
    return F.cross_entropy(logits, tokens[1:], reduction="none") / math.log(2)


# ------------------------------------------------------------------------------ PESQ / STOI
def original_audio_uris(split: EvalSplit) -> dict[str, str]:
    """utt_id -> audio URI of the corpus the split was preprocessed from."""
    summary_uri = uris.join(output_root(split.uri), SUMMARY)
    if not uris.exists(summary_uri):
        raise NotMeasured(f"original audio unknown: no preprocessing summary at {summary_uri}")
    fs, path = uris.filesystem(summary_uri)
    with fs.open(path) as f:
        summary = json.load(f)
    corpus, source = summary.get("corpus"), summary.get("input")
    if not corpus or not source or not uris.exists(source):
        raise NotMeasured(f"original audio unavailable: corpus input {source!r} not found")
    split_name = split.manifest.get("split")
    return {r.utt_id: r.audio_uri for r in read_corpus(corpus, source, splits=[split_name])
            if isinstance(r, Utterance)}

def tokenizer_round_trip(split: EvalSplit, utterances: int) -> dict:
    """PESQ (wb) and STOI of tokenizer.decode(tokenizer.encode(audio)) against the audio."""
    from pesq import pesq
    from pystoi import stoi


    tokenizer = load_audio_tokenizer(split.manifest, split.uri)
    if tokenizer is None:
        raise NotMeasured("the split has no audio tokenizer")
    sources = original_audio_uris(split)
    pesq_scores, stoi_scores = [], []
    for utt in split.utterances:
        if len(pesq_scores) >= utterances:
            break
        if utt.utt_id not in sources:
            continue
        audio = load_audio(sources[utt.utt_id], max_seconds=float("inf")).waveform   # 16 kHz
        decoded = tokenizer.decode(tokenizer.encode(torch.from_numpy(audio))).float().numpy()
        decoded = resample(decoded, int(tokenizer.sample_rate), PESQ_RATE) if tokenizer.sample_rate != PESQ_RATE else decoded
        n = min(len(audio), len(decoded))
        pesq_scores.append(float(pesq(PESQ_RATE, audio[:n], decoded[:n], "wb")))
        stoi_scores.append(float(stoi(audio[:n], decoded[:n], PESQ_RATE, extended=False)))
    if not pesq_scores:
        raise NotMeasured("none of the split's utterances was found in the original corpus")
    return {"pesq": float(np.mean(pesq_scores)), "stoi": float(np.mean(stoi_scores)),
            "utterances": len(pesq_scores), "tokenizer": tokenizer.kind, "pesq_mode": "wb"}

# ------------------------------------------------------------------------------ continuations
def save_spectrogram(waveform: np.ndarray, rate: int, prompt_seconds: float, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    nfft = int(min(256, max(16, len(waveform) // 8)))   # short samples still get several frames
    ax.specgram(waveform, Fs=rate, NFFT=nfft, noverlap=nfft * 3 // 4, cmap="magma")
    ax.axvline(prompt_seconds, color="cyan", linestyle="--", label="prompt end")
    ax.set_xlabel("seconds")
    ax.set_ylabel("Hz")
    ax.set_title(title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

@torch.no_grad()
def continuation_samples(model, split: EvalSplit, out_dir: str, label: str, samples: int,
                         prompt_tokens: int, new_tokens: int, seed: int = 0) -> list[dict]:
    import soundfile as sf


    tokenizer = load_audio_tokenizer(split.manifest, split.uri)
    os.makedirs(out_dir, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    long_enough = [u for u in split.utterances if u.audio_tokens.shape[0] >= prompt_tokens]
    out = []
    for i, utt in enumerate(long_enough[:samples]):
        prompt = utt.audio_tokens[:prompt_tokens][None]
        tokens = model.generate(prompt, prompt_tokens + new_tokens, temperature=1.0, generator=generator)
        wave = tokenizer.decode(tokens[0]).float().numpy()
        rate = int(tokenizer.sample_rate)
        name = f"{label}-continuation-{i}"
        sf.write(os.path.join(out_dir, f"{name}.wav"), wave, rate)
        save_spectrogram(wave, rate, prompt_tokens / tokenizer.rate_hz,
                         os.path.join(out_dir, f"{name}.png"), f"{label}: prompt {utt.utt_id} + continuation")
        out.append({"utt_id": utt.utt_id, "wav": f"samples/{name}.wav", "png": f"samples/{name}.png",
                    "prompt_seconds": prompt_tokens / tokenizer.rate_hz,
                    "continuation_seconds": new_tokens / tokenizer.rate_hz})
    return out
