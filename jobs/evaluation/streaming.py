"""Streaming against offline decoding for block-causal models.

Two measurements:
- the split's utterances decoded offline and as streams of `chunk_frames` feature frames
  (a block-causal LaCT model gives the same output both ways, so the CERs must agree);
- one long stream built by concatenating the split's utterances (cycled when the split is
  shorter) up to `stream_seconds`, fed chunk by chunk: per-chunk latency (p50/p95), real-time
  factor, greedy CER against the joined transcripts, and memory along the stream (the LaCTState
  size, which must stay flat, and the process's resident memory above its start).
"""

from __future__ import annotations

import time

import psutil
import torch

from jobs.evaluation.accuracy import GREEDY, decode_logits, scores, transcribe
from jobs.evaluation.data import EvalSplit, concatenate
from jobs.evaluation.measure import percentile

MEMORY_POINTS = 20   # samples of the memory curve along the long stream


def can_stream(model) -> bool:
    return hasattr(model, "streaming_inference") and bool(getattr(model.config, "lact_causal", False))


@torch.no_grad()
def stream_utterance(model, features: torch.Tensor, chunk_frames: int) -> torch.Tensor:
    return model.transcribe_streaming(features[None], chunk_frames=chunk_frames)


@torch.no_grad()
def run_long_stream(model, features: torch.Tensor, chunk_frames: int, frame_rate: float,
                    tokenizer, reference: str, time_limit: float | None) -> dict:
    process = psutil.Process()
    rss_start = process.memory_info().rss
    n_chunks = -(-features.shape[0] // chunk_frames)
    every = max(1, n_chunks // MEMORY_POINTS)
    state, latencies, best_ids, curve = None, [], [], []
    status, started = "ok", time.perf_counter()
    for i in range(n_chunks):
        chunk = features[i * chunk_frames: (i + 1) * chunk_frames][None]
        t0 = time.perf_counter()
        logits, state = model.streaming_inference(chunk, state, final=i == n_chunks - 1)
        latencies.append(time.perf_counter() - t0)
        best_ids.append(logits[0].argmax(dim=-1))
        if i % every == 0 or i == n_chunks - 1:
            curve.append({"stream_seconds": round((i + 1) * chunk_frames / frame_rate, 2),
                          "state_bytes": state.num_bytes(),
                          "rss_bytes": process.memory_info().rss - rss_start})
        if time_limit is not None and time.perf_counter() - started > time_limit:
            status = "time_limit"
            break
    streamed = min(len(latencies) * chunk_frames, features.shape[0]) / frame_rate
    compute = sum(latencies)
    ids = torch.unique_consecutive(torch.cat(best_ids)) if best_ids else torch.zeros(0, dtype=torch.long)
    hyp = tokenizer.decode([int(i) for i in ids if int(i) != 0])
    out = {"status": status, "stream_seconds": round(streamed, 2), "chunk_frames": chunk_frames,
           "chunk_seconds": chunk_frames / frame_rate, "chunks": len(latencies),
           "latency_p50_ms": 1000 * percentile(latencies, 50),
           "latency_p95_ms": 1000 * percentile(latencies, 95),
           "rtf": compute / max(streamed, 1e-9), "memory": curve,
           "state_bytes_max": max(p["state_bytes"] for p in curve) if curve else 0,
           "rss_growth_bytes": curve[-1]["rss_bytes"] - curve[0]["rss_bytes"] if curve else 0}
    if status == "ok":
        out["cer"] = scores([reference], [hyp])["cer"]
    else:
        out["detail"] = f"stopped after {streamed:.0f} s of stream: {time_limit:g} s time limit"
    return out


def evaluate_streaming(model, split: EvalSplit, tokenizer, chunk_frames: int, stream_seconds: float,
                       time_limit: float | None) -> dict:
    if not can_stream(model):
        return {"status": "not_applicable",
                "reason": "bidirectional encoder (looks ahead): only block-causal LaCT models stream"}
    utts = split.utterances
    refs = [u.text for u in utts]
    offline = transcribe(model, [u.features for u in utts], tokenizer, GREEDY)
    started = time.perf_counter()
    streamed = []
    for u in utts:
        logits = stream_utterance(model, u.features, chunk_frames)
        streamed.append(decode_logits(logits, torch.tensor([logits.shape[1]]), tokenizer)[0])
    stream_compute = time.perf_counter() - started
    audio = sum(u.features.shape[0] for u in utts) / split.frame_rate
    features, reference = concatenate(split, int(stream_seconds * split.frame_rate), cut=False)
    return {
        "status": "ok",
        "offline_cer": scores(refs, offline)["cer"],
        "streaming_cer": scores(refs, streamed)["cer"],
        "same_hypotheses": sum(a == b for a, b in zip(offline, streamed)) / max(len(utts), 1),
        "utterance_rtf": stream_compute / max(audio, 1e-9),
        "long_stream": run_long_stream(model, features, chunk_frames, split.frame_rate, tokenizer,
                                       reference, time_limit),
    }
