"""What the inference benches run on when no --model is given: untrained models of the small
demo size (configs/models/asr_small_lact*.yaml; speed and memory do not depend on the weights)
saved as training saves them, beside a minimal split manifest (log-mel features, identity CMVN, a
character tokenizer) that gives inference its preprocessing."""

from __future__ import annotations

import os
import string
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"lact": ("lact", REPO / "configs/models/asr_small_lact_streaming.yaml"),
           "full_attention": ("baseline", REPO / "configs/models/asr_small_lact.yaml")}


def bench_split(root: str) -> str:
    from pipeline.features import AudioFeatureExtractor
    from pipeline.manifest import write_manifest
    from pipeline.text_tokenizer import CharTokenizer

    split = os.path.join(root, "features", "bench")
    extractor = AudioFeatureExtractor()
    tokenizer = CharTokenizer(list(" " + string.ascii_lowercase + "'"))
    write_manifest(split, {"split": "bench", "feature": extractor.config(),
                           "cmvn": {"mean": [0.0] * extractor.n_mels, "std": [1.0] * extractor.n_mels,
                                    "computed_on": []},
                           "text_tokenizer": tokenizer.to_manifest(),
                           "shards": [{"path": "none.parquet", "num_rows": 0, "sha256": ""}]})
    return split


def bench_checkpoint(root: str, name: str, split: str) -> str:
    """name: lact (block-causal LaCT, streams) or full_attention (the baseline, windows)."""
    import torch

    from jobs.runs import checkpoint as ckpt
    from models import ASR_MODELS, LaCTAudioConfig, build_model

    architecture, path = CONFIGS[name]
    config = LaCTAudioConfig.from_yaml(path).replace(vocab_size=29, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(ASR_MODELS, architecture, config)
    directory = os.path.join(root, name)
    os.makedirs(directory, exist_ok=True)
    files = ckpt.write_model(directory, model.state_dict(), {
        "task": "asr", "architecture": architecture, "model_config": config, "text_tokenizer_split": split})
    ckpt.write_index(directory, files, 0)
    return directory


def synthetic_speech(seconds: float, seed: int = 0):
    """Harmonic syllables with pauses (float32, 16 kHz), built block by block."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * 16000), np.float32)
    t = np.arange(16000) / 16000
    for start in range(0, len(out), 16000 + 4800):
        f0 = 100 + 60 * rng.random()
        wave = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6)) * 0.5 * (1 - np.cos(2 * np.pi * 3 * t))
        piece = (0.2 * wave).astype(np.float32)[: len(out) - start]
        out[start: start + len(piece)] = piece
    return out


def bench_header(name: str, **fields) -> dict:
    """The fields every inference bench's JSON starts with: which bench, where and when."""
    import platform
    import time

    return {"bench": name, "host": platform.node(), "cpus": os.cpu_count(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}


def write_results(results: dict, out: str) -> None:
    import json

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
