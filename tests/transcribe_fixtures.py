"""Tiny ASR checkpoints beside a tiny preprocessed split (eval_split.py), saved as training saves
them and naming that split, as `lact-audio transcribe` and `serve` find them.

The models are untrained (a few seconds to build, none to train): they cannot transcribe speech,
so the tests check decoding, alignment, formats and streaming against the model's own offline
output, not against a reference transcript.
"""

from __future__ import annotations

import json
import os

import numpy as np
import soundfile as sf
import torch

from eval_split import tone, write_split
from models.factory import ASR_MODELS

ARCHS = {"causal": ("lact", True), "bidirectional": ("lact", False), "full": ("baseline", False)}


def write_asr_checkpoint(directory: str, split: str, architecture: str, causal: bool, seed: int = 0) -> str:
    from jobs.runs import checkpoint as ckpt
    from models import LaCTAudioConfig, build_model

    manifest = json.loads(open(os.path.join(split, "manifest.json")).read())
    config = dict(hidden_size=32, num_layers=2, num_attention_heads=4, num_lact_heads=2, chunk_size=16,
                  window_size=8, vocab_size=len(manifest["text_tokenizer"]["symbols"]) + 1, dropout=0.0,
                  mel_bins=80, lact_causal=causal)
    torch.manual_seed(seed)
    model = build_model(ASR_MODELS, architecture, LaCTAudioConfig(**config))
    os.makedirs(directory, exist_ok=True)
    files = ckpt.write_model(directory, model.state_dict(), {
        "task": "asr", "architecture": architecture, "model_config": config, "text_tokenizer_split": split})
    ckpt.write_index(directory, files, 0)
    return directory


def recording(seconds: float, seed: int = 0) -> np.ndarray:
    """Syllable-like tones, a second each, with 0.3 s pauses between them."""
    pieces = []
    rng = np.random.default_rng(seed)
    while sum(len(p) for p in pieces) < seconds * 16000:
        pieces.append(tone(int(rng.integers(1_000_000)), 1.0))
        pieces.append(np.zeros(4800, np.float32))
    return np.concatenate(pieces)[: int(seconds * 16000)]


def build_workspace(root: str) -> dict:
    split = write_split(root)
    ckpts = {name: write_asr_checkpoint(os.path.join(root, name), split, arch, causal)
             for name, (arch, causal) in ARCHS.items()}
    return {"root": root, "split": split, **ckpts}


def write_wav(path, samples: np.ndarray, rate: int = 16000) -> str:
    """A float WAV, so that reading it back gives exactly `samples` (16-bit PCM would not)."""
    sf.write(str(path), samples, rate, subtype="FLOAT")
    return str(path)
