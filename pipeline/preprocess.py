"""Raw corpus -> Ray Data -> Parquet shards of log-mel features, manifests, quarantine, summary.

    summary = run_preprocess(PreprocessConfig(corpus="librispeech", input_uri=..., output_uri=...))

Three stages, one file each under pipeline/preprocessing/:
  plan          (driver, no Ray) corpus listing, transcripts, text tokenizer, shards and their keys
  shard_runner  skip complete shards; build the rest on Ray Data (shard_worker runs in the tasks)
  finish        (driver) CMVN, one manifest.json per split, quarantine.parquet
then summary.json. Every rejected input, from the reader, the text checks or the audio, is a
records.Rejection and ends up in the quarantine table with its reason. Ray is reached through
pipeline/ray_connection.py, only when there is work for it.
"""

from __future__ import annotations

import gc
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict

from pipeline.features import AudioFeatureExtractor
from pipeline.files import write_json
from pipeline.manifest import SUMMARY
from pipeline.phase_timer import PhaseTimer
from pipeline.preprocessing import tokenizers
from pipeline.preprocessing.config import PreprocessConfig, is_training_split  # noqa: F401  (the public names)
from pipeline.preprocessing.finish import finish
from pipeline.preprocessing.plan import plan_shards, plan_text, read_listing
from pipeline.preprocessing.shard_runner import build_shards
from pipeline.ray_connection import ray_session
from pipeline.uri import absolute, ensure_writable, join, require_exists

# --------------------------------------------------------------------------------------- Ray

class LazyRay:
    """Starts (or connects to) Ray only when there is work for it: a re-run over complete shards
    with cached tokenizers never needs a cluster."""

    def __init__(self, address: str | None):
        self.address = address
        self.stack = ExitStack()
        self.ray = None
        self.start_seconds = 0.0

    def get(self):
        if self.ray is None:
            begin = time.time()
            self.ray = self.stack.enter_context(ray_session(self.address))
            self.start_seconds = time.time() - begin
        return self.ray

    def cpus(self) -> int | None:
        return int(self.ray.cluster_resources().get("CPU", 0)) if self.ray is not None else None

    def close(self) -> None:
        self.stack.close()


def _task_phase_seconds(results: list[dict]) -> dict[str, float]:
    """Where the Ray tasks' wall time went, summed over the shards built in this run."""
    total: dict[str, float] = {}
    for result in results:
        for phase, seconds in result.get("phase_seconds", {}).items():
            total[phase] = total.get(phase, 0.0) + seconds
    return {k: round(v, 3) for k, v in sorted(total.items())}


@contextmanager
def _cyclic_gc_paused():
    """Planning makes ~100k rows and records that live until the run ends. Among them Python's
    cyclic collector went through the whole heap (torch, Ray, pyarrow) in 2 of 8 plans of a 5 h
    corpus, 80 ms each, while every task slot waited. Reference counting still frees what the
    plan drops; the cyclic collector resumes after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _summary(config: PreprocessConfig, counts: dict, results: list[dict], cpus: int | None,
             ray_start_seconds: float, started: float) -> dict:
    """summary.json but for its phase_seconds: what was done, with what, and where the time went."""
    return {
        "corpus": config.corpus,
        "input": config.input_uri,
        "output": config.output_uri,
        "config": {k: v for k, v in asdict(config).items() if k not in ("progress",)},
        **counts,
        "ray_cpus": cpus,                       # None: nothing to do, Ray was not started
        "ray_start_seconds": round(ray_start_seconds, 3),
        "task_cpu_seconds": round(sum(r["cpu_seconds"] for r in results), 3),
        "task_phase_seconds": _task_phase_seconds(results),
        "seconds": round(time.time() - started, 3),
    }


def run_preprocess(config: PreprocessConfig, address: str | None = None) -> dict:
    """The whole run; returns the summary (also written to OUTPUT/summary.json)."""
    started, timer = time.time(), PhaseTimer()
    config.validate()
    config.input_uri, config.output_uri = absolute(config.input_uri), absolute(config.output_uri)
    require_exists(config.input_uri, "input")
    ensure_writable(config.output_uri, "output")

    # ---- plan
    with _cyclic_gc_paused():
        utterances, reader_rejections = read_listing(config)
        timer.done("read_corpus")
        config.log(f"{config.corpus} at {config.input_uri}: {len(utterances)} utterances, "
                   f"{len(reader_rejections)} rejected by the reader")
        plan, text_tokenizer = plan_text(config, utterances, reader_rejections,
                                         lambda texts: tokenizers.text_tokenizer(config, texts))
    feature = AudioFeatureExtractor().config()
    settings = {"feature": feature, "min_seconds": config.min_seconds, "max_seconds": config.max_seconds}
    timer.done("plan_text")
    lazy_ray = LazyRay(address)
    try:
        audio_tokenizer = tokenizers.audio_tokenizer(config, plan, settings, lazy_ray.get)
        settings["audio_tokenizer"] = audio_tokenizer
        timer.done("audio_tokenizer")
        tasks = plan_shards(config, plan, {
            "feature": feature, "min": config.min_seconds, "max": config.max_seconds,
            "text": text_tokenizer.fingerprint(), "audio": audio_tokenizer.fingerprint() if audio_tokenizer else None})
        # ---- shards (starts Ray only if some shard is missing)
        results = build_shards(config, tasks, settings, lazy_ray.get)
        cpus = lazy_ray.cpus()
    finally:
        lazy_ray.close()
    timer.done("shards")

    # ---- finish
    counts = finish(config, plan, results, {
        "feature": feature, "text_tokenizer": text_tokenizer.to_manifest(),
        "audio_tokenizer": audio_tokenizer.to_manifest() if audio_tokenizer else None})
    summary = _summary(config, counts, results, cpus, lazy_ray.start_seconds, started)
    timer.done("finish")
    summary["phase_seconds"] = timer.rounded()
    write_json(join(config.output_uri, SUMMARY), summary)
    config.log(f"written {summary['written']} utterances ({summary['hours']:.3f} h), quarantined "
               f"{summary['quarantined']} {summary['quarantined_by_reason']}, shards written "
               f"{summary['shards_written']}, skipped {summary['shards_skipped']}, {summary['seconds']:.1f} s "
               f"-> {config.output_uri}")
    return summary
