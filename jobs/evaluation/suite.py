"""Run the evaluation suites for one or more models on one split; write metrics.json, report.md
and the plots into the report directory (local or s3://), and log them to MLflow when
MLFLOW_TRACKING_URI is set.

quick: CER/WER (greedy) overall, per speaker, per language; NLL for generators.
full:  adds beam decoding, long-form (one pass against segmented: the context gain), streaming,
       adaptation (one-pass and streamed sessions; chained state where trained so), fast-weight
       ablation, quantised inference, efficiency against length; for generators NLL by position
       on long single-speaker sequences, tokenizer PESQ/STOI and continuation samples.
long-form: quick plus only the long-context measure of full: long-form recordings (one pass
       against segmented) for ASR, NLL by position for generators; for a test split too long
       to run every suite on.
Every size is a field of SuiteConfig, so tests and the demo run small versions. Which steps a
suite runs for a model is its task's (task.evaluation_steps; the steps in steps.py).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import torch

from jobs.evaluation import adaptation, efficiency, long_form, position_nll, recordings
from jobs.evaluation.comparison import compare_models
from jobs.evaluation.data import read_split
from jobs.evaluation.generation_quality import NotMeasured, tokenizer_round_trip
from jobs.evaluation.report import write_report
from jobs.evaluation.steps import STEPS, ModelUnderTest, SharedInputs
from jobs.runs import tracking
from jobs.runs.model_io import load_model
from jobs.tasks import task_named
from models import count_parameters
from pipeline import uri as uris
from pipeline.errors import UserError
from pipeline.files import write_json

QUICK, LONG_FORM, FULL = "quick", "long-form", "full"


@dataclass
class SuiteConfig:
    suite: str = QUICK
    beam_size: int = 8
    # long-form: recordings of these lengths (and whole chapters when long_form_longest), at most
    # long_form_recordings per length, wanted from long_form_speakers speakers (a shortfall is reported)
    long_form_seconds: list[float] = field(default_factory=lambda: list(long_form.DEFAULT_SECONDS))
    long_form_longest: bool = True
    long_form_recordings: int = long_form.DEFAULT_RECORDINGS
    long_form_speakers: int = long_form.DEFAULT_SPEAKERS
    stream_seconds: float = 1800.0
    stream_chunk_frames: int = 100
    adaptation_counts: list[int] = field(default_factory=lambda: list(adaptation.DEFAULT_COUNTS))
    session_seconds: list[float] = field(default_factory=lambda: list(adaptation.DEFAULT_SESSION_SECONDS))
    chained_state: str = "trained"        # trained | always | never (adaptation.py)
    efficiency_seconds: list[float] = field(default_factory=lambda: list(efficiency.DEFAULT_SECONDS))
    efficiency_tokens: list[int] = field(default_factory=lambda: [1024, 2048, 4096, 8192])
    # generators: NLL in position bins (edges in tokens) over long single-speaker sequences
    nll_position_bins: list[int] = field(default_factory=lambda: list(position_nll.DEFAULT_EDGES))
    nll_sequences: int = position_nll.DEFAULT_SEQUENCES
    round_trip_utterances: int = 8
    samples: int = 2
    prompt_seconds: float = 0.5
    continuation_seconds: float = 0.5
    time_limit: float | None = 600.0      # per measurement (one recording, one stream, ...)
    max_utterances: int | None = None
    batch_size: int = 16
    # paired-bootstrap intervals of every pair of models (several models on one split)
    bootstrap_seed: int = 0
    bootstrap_resamples: int = 10000

    def validate(self) -> None:
        if self.suite not in (QUICK, LONG_FORM, FULL):
            raise UserError(f"--suite must be quick, long-form or full, got {self.suite!r}")
        positive = {"--beam-size": self.beam_size, "--stream-seconds": self.stream_seconds,
                    "--stream-chunk-frames": self.stream_chunk_frames,
                    "--batch-size": self.batch_size, "--nll-sequences": self.nll_sequences,
                    "--long-form-recordings": self.long_form_recordings,
                    "--long-form-speakers": self.long_form_speakers,
                    "--prompt-seconds": self.prompt_seconds,
                    "--continuation-seconds": self.continuation_seconds}
        for flag, value in positive.items():
            if not value > 0:
                raise UserError(f"{flag} must be > 0, got {value}")
        if any(not v > 0 for v in self.long_form_seconds) or not (self.long_form_seconds or self.long_form_longest):
            raise UserError(f"--long-form-seconds needs positive values (or max), got {self.long_form_seconds}")
        for flag, values in (("--efficiency-seconds", self.efficiency_seconds),
                             ("--efficiency-tokens", self.efficiency_tokens)):
            if not values or any(not v > 0 for v in values):
                raise UserError(f"{flag} needs positive values, got {values}")
        if not self.adaptation_counts or any(k < 0 for k in self.adaptation_counts):
            raise UserError(f"--adaptation-counts needs values >= 0, got {self.adaptation_counts}")
        if len(self.session_seconds) != 2 or not 0 < self.session_seconds[0] <= self.session_seconds[1]:
            raise UserError(f"--session-seconds needs MIN,MAX with 0 < MIN <= MAX, got {self.session_seconds}")
        if self.chained_state not in adaptation.CHAINED_MODES:
            raise UserError(f"--chained-state must be one of {', '.join(adaptation.CHAINED_MODES)}, "
                            f"got {self.chained_state!r}")
        position_nll.check_edges(self.nll_position_bins)
        if self.time_limit is not None and not self.time_limit > 0:
            raise UserError(f"--time-limit must be > 0, got {self.time_limit}")
        if self.samples < 0 or self.round_trip_utterances < 1:
            raise UserError("--samples must be >= 0 (and round-trip utterances >= 1)")
        if self.bootstrap_resamples < 100:
            raise UserError(f"--bootstrap-resamples must be >= 100, got {self.bootstrap_resamples}")
        if self.max_utterances is not None and self.max_utterances < 1:
            raise UserError(f"--max-utterances must be >= 1, got {self.max_utterances}")


def not_measured() -> dict:
    """What the seed lists but this machine cannot measure, with the reason."""
    power = ("no power counters readable here (no /sys/class/powercap RAPL"
             + (")" if not torch.cuda.is_available() else "; NVML energy not wired in)"))
    return {"mos": "needs a pretrained MOS predictor or human raters; no model weights can be "
                   "fetched on this machine", "energy": power}


def unique_labels(metas: list[dict]) -> list[str]:
    """Architecture names ("lact", "lact-causal", "baseline"), numbered when two models share one."""
    names = [str(m.get("architecture") or "model")
             + ("-causal" if (m.get("model_config") or {}).get("lact_causal") else "") for m in metas]
    return [f"{n}-{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


# ------------------------------------------------------------------------------ the whole run
def run_suite(model_uris: list[str], data_uri: str, report_uri: str, config: SuiteConfig,
              echo: bool = True) -> dict:
    """Evaluate every model; returns what metrics.json holds (see module docstring)."""
    config.validate()
    report_uri = uris.absolute(report_uri)
    uris.ensure_writable(report_uri, "report directory")
    log = (lambda msg: print(f"  evaluate: {msg}", flush=True)) if echo else (lambda msg: None)
    uris.require_exists(uris.absolute(data_uri), "data split")   # before the models load
    loaded = [load_model(u) for u in model_uris]
    shared = shared_inputs([meta for _, meta in loaded], data_uri, report_uri, config)
    models = {}
    for label, uri, (model, meta) in zip(unique_labels([m for _, m in loaded]), model_uris, loaded):
        under_test = ModelUnderTest(label, uri, model, task_named(meta["task"]))
        models[label] = evaluate_model(under_test, meta, shared, log)
    results = run_results(models, shared)
    publish(results, report_uri, shared.staging)
    return results


def shared_inputs(metas: list[dict], data_uri: str, report_uri: str, config: SuiteConfig) -> SharedInputs:
    """The split and what every model decodes alike (tokenizers, long-form recordings, sessions,
    the tokenizer round trip), built once for the steps the models' tasks run in this suite."""
    tasks = list({id(t): t for t in (task_named(m["task"]) for m in metas)}.values())
    steps = {step for task in tasks for step in task.evaluation_steps[config.suite]}
    split = read_split(data_uri, features=any(t.content.features for t in tasks),
                       audio_tokens=any(not t.content.features for t in tasks),   # audio-token content
                       max_utterances=config.max_utterances)
    staging = report_uri if not uris.is_remote(report_uri) else tempfile.mkdtemp(prefix="lact-report-")
    os.makedirs(staging, exist_ok=True)
    shared = SharedInputs(config, split, staging, full=config.suite == FULL,
                          tokenizers={t: t.tokenizer(split.manifest, split.uri) for t in tasks})
    if "long_form" in steps:
        shared.recording_sets = recordings.build_recording_sets(
            split, config.long_form_seconds, config.long_form_longest, config.long_form_recordings,
            config.long_form_speakers)
    if "adaptation" in steps:
        shared.sessions = recordings.session_set(split, *config.session_seconds)
    if "tokenizer_round_trip" in steps:
        try:
            shared.round_trip = tokenizer_round_trip(split, config.round_trip_utterances)
        except NotMeasured as exc:
            shared.round_trip = {"status": "not_measured", "reason": str(exc)}
    return shared


def evaluate_model(m: ModelUnderTest, meta: dict, shared: SharedInputs, log) -> dict:
    """One model through the steps its task runs in this suite, timed; its metrics."""
    suite = shared.config.suite
    log(f"{m.label}: {meta['task']} / {meta.get('architecture')} ({suite} suite)")
    m.model.eval()
    started = time.perf_counter()
    for name in m.task.evaluation_steps[suite]:
        step_started = time.perf_counter()
        m.metrics.update(STEPS[name](m, shared))
        if name not in m.task.evaluation_steps[QUICK]:
            log(f"{name} {time.perf_counter() - step_started:.1f} s")
    m.metrics.update(model=m.uri, task=meta["task"], architecture=meta.get("architecture"),
                     parameters=count_parameters(m.model),
                     data=shared.split.uri, data_content_hash=shared.split.info.content_hash,
                     evaluate_seconds=round(time.perf_counter() - started, 2))
    if shared.full:
        m.metrics["not_measured"] = not_measured()
    return m.metrics


def run_results(models: dict, shared: SharedInputs) -> dict:
    """What metrics.json holds: the run, every model's metrics and the pairwise comparisons."""
    config, split = shared.config, shared.split
    results = {"suite": config.suite, "data": split.uri, "utterances": len(split.utterances),
               "audio_seconds": sum(u.duration for u in split.utterances),
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "config": asdict(config), "torch_threads": torch.get_num_threads(),
               "device": "cuda" if torch.cuda.is_available() else "cpu", "models": models}
    if shared.recording_sets:   # what the long-form sets hold, the same for every model
        results["long_form_sets"] = [s.summary() for s in shared.recording_sets]
    if len(models) == 1:   # one model: its metrics at the top level, as before
        results.update(next(iter(models.values())))
    else:
        results["comparisons"] = compare_models(models, seed=config.bootstrap_seed,
                                                resamples=config.bootstrap_resamples)
    return results


def publish(results: dict, report_uri: str, staging: str) -> None:
    """report.md, the plots and metrics.json into the report directory; the MLflow run's id and
    the report's URI into `results`."""
    files = write_report(results, staging)
    results["report"] = uris.join(report_uri, "report.md")
    write_json(os.path.join(staging, "metrics.json") if uris.is_remote(report_uri)
               else uris.join(report_uri, "metrics.json"), results, sort_keys=False)
    files.append("metrics.json")
    results["mlflow_run_id"] = log_to_mlflow(results, report_uri, staging)
    if uris.is_remote(report_uri):
        fs, path = uris.filesystem(report_uri)
        fs.put(staging.rstrip("/") + "/", path, recursive=True)
        shutil.rmtree(staging, ignore_errors=True)


def log_to_mlflow(results: dict, report_uri: str, local_dir: str) -> str | None:
    """One MLflow run with every model's headline numbers and the report files, when
    MLFLOW_TRACKING_URI is set (the embedded store is for training runs)."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    tracking.setup("lact-audio-evaluation")
    with tracking.started_run(run_name=f"evaluate-{results['suite']}") as run_id:
        tracking.log_params({"suite": results["suite"], "data": results["data"][:500],
                           "report": report_uri[:500]})
        values = {}
        for label, m in results["models"].items():
            for key in ("cer", "wer", "nll_bits", "pesq", "stoi"):
                if isinstance(m.get(key), (int, float)) and math.isfinite(m[key]):
                    values[f"{label}.{key}"] = float(m[key])
            for length in (m.get("long_form") or {}).get("lengths", []):
                if length["one_pass"]:
                    values[f"{label}.long_form_cer_{length['length']}"] = length["one_pass"]["cer"]
                if length["context_gain"].get("status") == "ok":
                    values[f"{label}.context_gain_{length['length']}"] = length["context_gain"]["difference"]
        tracking.log_metrics(values)
        tracking.log_artifacts(local_dir, artifact_path="evaluation")
        return run_id
