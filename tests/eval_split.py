"""A tiny preprocessed split for the evaluation tests, written in a second without Ray or espeak:
a LibriSpeech-layout corpus of short harmonic tones (WAV), and beside it OUTPUT/test-clean with
real log-mel features, CMVN, a character tokenizer, μ-law audio tokens, a Parquet shard, its
manifest and the preprocessing summary.json that points back at the corpus (for PESQ/STOI).

Speakers have different numbers of utterances (adaptation needs one with more than 8).
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from jobs.tasks import task_named


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Autouse in the evaluation test modules that import it. Tiny models: two threads on a shared 2-core machine spin more than they compute
    (measured here: 5 s with one thread, minutes with two under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SPEAKERS = {"1001": 10, "1002": 4, "1003": 3}   # speaker -> utterances
WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
RATE = 16000


def text_of(speaker: str, i: int) -> str:
    return f"{WORDS[i % 10]} {WORDS[(i + int(speaker)) % 10]}"


def tone(seed: int, seconds: float) -> np.ndarray:
    """A voiced-sounding signal: a few harmonics with a syllable-rate envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 110 + 40 * rng.random()
    wave = sum(np.sin(2 * np.pi * f0 * h * t + rng.random()) / h for h in range(1, 6))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3 * t))
    wave = 0.2 * wave * envelope + 0.005 * rng.standard_normal(len(t))
    return wave.astype(np.float32)


def write_split(root: str, recordings: dict[str, int] | None = None) -> str:
    """Returns the split URI OUTPUT/test-clean under root. recordings: "SPEAKER" or
    "SPEAKER-CHAPTER" -> utterances (default SPEAKERS, all in chapter 1)."""
    from pipeline.audio_tokenizer import MuLawTokenizer
    from pipeline.features import AudioFeatureExtractor
    from pipeline.files import write_atomic
    from pipeline.manifest import SUMMARY, write_manifest
    from pipeline.normalizer import CMVNStats, FeatureNormalizer
    from pipeline.shards import build_table, shard_name, to_parquet_bytes
    from pipeline.text_tokenizer import CharTokenizer

    raw = os.path.join(root, "raw")
    out = os.path.join(root, "features")
    extractor = AudioFeatureExtractor()
    mulaw = MuLawTokenizer()
    chapters = {k if "-" in k else f"{k}-1": n for k, n in (recordings or SPEAKERS).items()}
    texts = {f"{c}-{i:04d}": text_of(c.split("-")[0], i) for c, n in chapters.items() for i in range(n)}
    tokenizer = CharTokenizer.build(texts.values())
    rows, stats = [], CMVNStats.empty(extractor.n_mels)
    for n, (utt_id, text) in enumerate(sorted(texts.items())):
        speaker, number = utt_id.split("-")[:2]
        chapter = os.path.join(raw, "test-clean", speaker, number)
        os.makedirs(chapter, exist_ok=True)
        wave = tone(n, 0.8 + 0.1 * (n % 4))
        sf.write(os.path.join(chapter, f"{utt_id}.wav"), wave, RATE)
        with open(os.path.join(chapter, f"{speaker}-{number}.trans.txt"), "a") as f:
            f.write(f"{utt_id} {text.upper()}\n")
        feats = np.asarray(extractor(wave), dtype=np.float32)
        stats = stats + CMVNStats.of(feats)
        rows.append({"utt_id": utt_id, "speaker": speaker, "language": "en", "text": text,
                     "duration": len(wave) / RATE, "num_frames": len(feats), "features": feats.astype(np.float16),
                     "token_ids": tokenizer.encode(text),
                     "audio_tokens": mulaw.encode(wave).numpy()})
    split = os.path.join(out, "test-clean")
    frames = np.concatenate([r["features"] for r in rows])
    data = to_parquet_bytes(build_table(rows, frames, with_audio_tokens=True), {"test": True})
    write_atomic(os.path.join(split, shard_name(0)), data)
    seconds = sum(r["duration"] for r in rows)
    write_manifest(split, {
        "split": "test-clean", "corpus": "librispeech", "num_utterances": len(rows),
        "hours": seconds / 3600, "seconds": seconds,
        "num_frames": sum(r["features"].shape[0] for r in rows),
        "feature": extractor.config(), "cmvn": FeatureNormalizer.from_stats(stats).to_dict(["test-clean"]),
        "text_tokenizer": tokenizer.to_manifest(), "audio_tokenizer": mulaw.to_manifest(),
        "shards": [{"path": shard_name(0), "num_rows": len(rows),
                    "sha256": hashlib.sha256(data).hexdigest(), "key": "test"}]})
    with open(os.path.join(out, SUMMARY), "w") as f:
        json.dump({"corpus": "librispeech", "input": raw}, f)
    return split


def write_checkpoint(directory: str, task: str, architecture: str, vocab_size: int,
                     causal: bool = False, seed: int = 0) -> str:
    """An untrained tiny model saved the way training saves its checkpoints."""
    import torch

    from jobs.runs import checkpoint as ckpt
    from models import LaCTAudioConfig, build_model

    # Generators see ~4000 audio tokens per utterance: large chunks keep the chunk loop short.
    config = dict(hidden_size=32, num_layers=2, num_attention_heads=4, num_lact_heads=2,
                  chunk_size=16 if task == "asr" else 512,
                  window_size=8, vocab_size=vocab_size, dropout=0.0, mel_bins=80,
                  audio_vocab_size=256, lact_causal=causal)
    torch.manual_seed(seed)
    model = build_model(task_named(task).models, architecture, LaCTAudioConfig(**config))
    os.makedirs(directory, exist_ok=True)
    files = ckpt.write_model(directory, model.state_dict(),
                             {"task": task, "architecture": architecture, "model_config": config})
    ckpt.write_index(directory, files, 0)
    return directory
