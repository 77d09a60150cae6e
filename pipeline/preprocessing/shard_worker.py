"""Stage 2, worker side: what runs inside a Ray task for one planned shard.

For each utterance: fetch bytes (local or s3://), decode, downmix, resample, validate, log-mel,
audio tokens. Every row gets an outcome inside the task (good, or a records.Rejection with its
reason), because an exception escaping a Ray Data UDF would fail the whole dataset. Good rows are
encoded to Parquet and written here, by the worker (audio and features never travel through Ray's
object store); the task returns only a small JSON result: the shard's footer info plus, for the
bench, CPU seconds and per-phase times.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from pipeline.audio import AudioError, decode, read_bytes, validate_and_resample
from pipeline.features import AudioFeatureExtractor
from pipeline.files import write_atomic
from pipeline.normalizer import CMVNStats
from pipeline.phase_timer import PhaseTimer
from pipeline.preprocessing.frame_buffer import FrameBuffer
from pipeline.quarantine import PROCESSING_ERROR
from pipeline.records import Rejection
from pipeline.shards import build_table, to_parquet_bytes
from pipeline.uri import is_remote

FETCH_THREADS = 4   # overlap object-store reads with decoding inside a task

_extractors: dict[str, object] = {}
_frame_buffers: dict[int, FrameBuffer] = {}   # per n_mels, reused by this process's shards


def _extractor(feature_config: dict):
    """One AudioFeatureExtractor (mel filterbank, window) per worker process and feature config."""
    key = json.dumps(feature_config, sort_keys=True)
    if key not in _extractors:
        _extractors[key] = AudioFeatureExtractor.from_config(feature_config)
    return _extractors[key]


def _frame_buffer(n_mels: int) -> FrameBuffer:
    """This worker process's frame buffer, emptied for a new shard."""
    buffer = _frame_buffers.setdefault(n_mels, FrameBuffer(n_mels))
    buffer.start_shard()
    return buffer


def _fetch(uri: str):
    try:
        return read_bytes(uri)
    except Exception as exc:  # AudioError(audio_missing) or a storage error: decided per row
        return exc


def _fetched(utterances: list[dict]):
    """(utterance, bytes or the exception) in order. Object-store reads run FETCH_THREADS ahead of
    the caller; local files are read in turn: from the page cache a read is a copy, and when every
    core is busy reader threads only take the GIL from decoding."""
    if not any(is_remote(u["audio_uri"]) for u in utterances):
        for utt in utterances:
            yield utt, _fetch(utt["audio_uri"])
        return
    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        yield from zip(utterances, pool.map(_fetch, [u["audio_uri"] for u in utterances]))


def _audio_tokens(tokenizer, log_mel: torch.Tensor, waveform: np.ndarray) -> np.ndarray:
    """k-means: on the frames as the shard stores them (float16); the others: on the waveform."""
    if tokenizer.kind == "kmeans":
        return tokenizer.encode_features(log_mel.T.half().float().contiguous()).numpy()
    return tokenizer.encode(torch.from_numpy(waveform)).numpy()


def _outcome(utt: dict, fetched, settings: dict, extractor, frames: FrameBuffer,
             clock: PhaseTimer) -> dict | Rejection:
    """One utterance -> its shard row, its features appended to `frames`, or its Rejection (then
    nothing is appended, so a shard's good rows' frames follow each other in the buffer)."""
    try:
        if isinstance(fetched, Exception):
            raise fetched
        samples, rate = decode(fetched, utt["audio_uri"])
        clock.done("decode")
        audio = validate_and_resample(samples, rate, utt["audio_uri"], min_seconds=settings["min_seconds"],
                                      max_seconds=settings["max_seconds"])
        clock.done("resample")
        with torch.inference_mode():
            log_mel = extractor.log_mel(torch.from_numpy(audio.waveform))   # [n_mels, frames]
            clock.done("mel")
            row = {**utt, "duration": audio.duration, "num_frames": log_mel.shape[1], "repairs": audio.repairs}
            tokenizer = settings.get("audio_tokenizer")
            if tokenizer is not None:
                row["audio_tokens"] = _audio_tokens(tokenizer, log_mel, audio.waveform)
                clock.done("audio_tokens")
            row["features"] = frames.append(log_mel)
        clock.done("mel")   # "mel" also counts the float16 copy into the buffer; tokens are timed apart
        return row
    except AudioError as exc:
        clock.done("rejected")
        return Rejection.of(utt, exc.reason, exc.detail)
    except Exception as exc:  # never let one row fail the dataset
        clock.done("rejected")
        return Rejection.of(utt, PROCESSING_ERROR, f"{utt['audio_uri']}: {type(exc).__name__}: {exc}")


def build_shard(task: dict, settings: dict) -> dict:
    """One planned shard (plan.ShardTask as a dict) -> written to task["uri"]; returns its result."""
    cpu_start, clock = time.process_time(), PhaseTimer()
    extractor, frames = _extractor(settings["feature"]), _frame_buffer(settings["feature"]["n_mels"])
    good, bad = [], []
    for utt, data in _fetched(task["utterances"]):
        clock.done("fetch_wait")
        outcome = _outcome(utt, data, settings, extractor, frames, clock)
        (bad if isinstance(outcome, Rejection) else good).append(outcome)

    shard_frames = frames.used_frames()   # the good rows' features, one after another
    stats = CMVNStats.of(shard_frames)
    clock.done("cmvn")
    info = {
        "key": task["key"],
        "split": task["split"],
        "index": task["index"],
        "path": task["name"],
        "num_rows": len(good),
        "seconds": float(sum(r["duration"] for r in good)),
        "frames": len(shard_frames),
        "cmvn": stats.to_dict(),
        "rejections": [r.to_dict() for r in bad],
        "repaired": [{"utt_id": r["utt_id"], "repairs": r["repairs"]} for r in good if r["repairs"]],
    }
    data = to_parquet_bytes(build_table(good, shard_frames, settings.get("audio_tokenizer") is not None), info)
    clock.done("parquet")
    write_atomic(task["uri"], data)
    clock.done("write")
    sha256 = hashlib.sha256(data).hexdigest()   # for the manifest
    clock.done("checksum")
    # Not in the shard's footer (it would make identical reruns differ): the bench's timings.
    return {**info, "sha256": sha256, "skipped": False, "bytes": len(data),
            "cpu_seconds": time.process_time() - cpu_start, "phase_seconds": clock.seconds}


def process_shard(row: dict, settings: dict) -> dict:
    """Ray Data UDF: {"item": the pickled plan.ShardTask dict} -> {"result": result JSON}."""
    torch.set_num_threads(1)     # one Ray CPU per task: more threads would fight the other tasks
    return {"result": json.dumps(build_shard(pickle.loads(row["item"]), settings))}


def sample_frames(row: dict, settings: dict) -> dict:
    """Ray Data UDF for the k-means fit: log-mel frames of some training utterances, strided."""
    torch.set_num_threads(1)
    item = pickle.loads(row["item"])
    keep, clock = settings["frames_per_utterance"], PhaseTimer()
    extractor, buffer, chunks = _extractor(settings["feature"]), _frame_buffer(settings["feature"]["n_mels"]), []
    for utt, data in _fetched(item["utterances"]):
        out = _outcome(utt, data, {**settings, "audio_tokenizer": None}, extractor, buffer, clock)
        if not isinstance(out, Rejection):
            frames = out["features"]
            chunks.append(frames[::max(1, math.ceil(len(frames) / keep))])
    frames = np.concatenate(chunks) if chunks else np.zeros((0, settings["feature"]["n_mels"]), np.float16)
    return {"index": item["index"], "frames": frames.tobytes()}
