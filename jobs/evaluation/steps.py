"""The evaluation steps a suite runs on one model, by the names the task objects list
(task.evaluation_steps in jobs/tasks): each returns the keys it adds to the model's metrics.

    accuracy              CER/WER greedy (and beam in the full suite), per speaker and language
    long_form             one pass against segmented on long recordings (the context gain)
    streaming             chunked streaming against offline, and one long stream
    adaptation            CER against utterances seen, one-pass and streamed sessions
    fast_weight_ablation  CER with every test-time update skipped
    quantized             int8 / float16 inference
    nll                   next-token NLL (bits/token) overall and per speaker
    nll_by_position       NLL in position bins over long single-speaker sequences
    tokenizer_round_trip  the tokenizer's PESQ/STOI (measured once per run, shared)
    continuations         continuation samples (WAV + spectrogram)
    efficiency            latency, memory, RTF and FLOPs against input length
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from jobs.evaluation import adaptation, efficiency, long_form, position_nll
from jobs.evaluation import generation_quality as gq
from jobs.evaluation.ablation import evaluate_ablation
from jobs.evaluation.accuracy import accuracy_report
from jobs.evaluation.data import EvalSplit
from jobs.evaluation.generation_quality import position_nll_bits
from jobs.evaluation.quantized import evaluate_quantized
from jobs.evaluation.streaming import evaluate_streaming
from jobs.evaluation.training_condition import training_condition


@dataclass
class SharedInputs:
    """What every model of one run is evaluated on (built once in suite.run_suite)."""

    config: object                        # suite.SuiteConfig
    split: EvalSplit
    staging: str                          # the local report directory
    full: bool
    tokenizers: dict = field(default_factory=dict)    # task object -> its text tokenizer (or None)
    recording_sets: list = field(default_factory=list)
    sessions: object = None
    round_trip: dict = field(default_factory=dict)


@dataclass
class ModelUnderTest:
    label: str
    uri: str
    model: torch.nn.Module
    task: object                          # its task object (jobs/tasks)
    metrics: dict = field(default_factory=dict)   # what the steps before this one added

    def tokenizer(self, shared: SharedInputs):
        return shared.tokenizers.get(self.task)


def accuracy(m: ModelUnderTest, s: SharedInputs) -> dict:
    return accuracy_report(m.model, s.split.utterances, m.tokenizer(s), beam=s.full,
                           beam_size=s.config.beam_size, batch_size=s.config.batch_size)


def long_form_step(m: ModelUnderTest, s: SharedInputs) -> dict:
    c = s.config
    return {"long_form": long_form.evaluate_long_form(
        m.model, s.recording_sets, m.tokenizer(s), c.stream_chunk_frames, c.time_limit,
        c.bootstrap_seed, c.bootstrap_resamples, c.batch_size)}


def streaming(m: ModelUnderTest, s: SharedInputs) -> dict:
    c = s.config
    return {"streaming": evaluate_streaming(m.model, s.split, m.tokenizer(s), c.stream_chunk_frames,
                                            c.stream_seconds, c.time_limit)}


def adaptation_step(m: ModelUnderTest, s: SharedInputs) -> dict:
    c = s.config
    condition = training_condition(m.uri)    # what the model was trained on
    return {"adaptation": adaptation.evaluate_adaptation(
        m.model, s.split, m.tokenizer(s), c.adaptation_counts, s.sessions, condition, c.chained_state,
        c.stream_chunk_frames, c.time_limit, c.bootstrap_seed, c.bootstrap_resamples, c.batch_size)}


def fast_weight_ablation(m: ModelUnderTest, s: SharedInputs) -> dict:
    return {"fast_weight_ablation": evaluate_ablation(m.model, s.split, m.tokenizer(s), m.metrics["cer"])}


def quantized(m: ModelUnderTest, s: SharedInputs) -> dict:
    return {"quantized": evaluate_quantized(m.model, s.split, m.tokenizer(s))}


@torch.no_grad()
def nll(m: ModelUnderTest, s: SharedInputs) -> dict:
    """Next-token NLL (bits/token) overall and per speaker, one utterance at a time."""
    per: dict[str, list[float]] = {}
    rows = []    # per utterance: the units of a paired comparison
    for utt in s.split.utterances:
        if utt.audio_tokens.shape[0] < 2:
            continue
        bits = position_nll_bits(m.model, utt.audio_tokens)
        rows.append({"utt_id": utt.utt_id, "bits": float(bits.sum()), "tokens": bits.numel()})
        acc = per.setdefault(utt.speaker, [0.0, 0, 0])
        acc[0] += float(bits.sum())
        acc[1] += bits.numel()
        acc[2] += 1
    total_bits, tokens = sum(a[0] for a in per.values()), sum(a[1] for a in per.values())
    return {"nll_bits": total_bits / max(tokens, 1), "tokens": tokens,
            "utterances": sum(a[2] for a in per.values()),
            "per_speaker": {sp: {"nll_bits": a[0] / max(a[1], 1), "bits": a[0], "tokens": a[1],
                                 "utterances": a[2]} for sp, a in sorted(per.items())},
            "per_utterance": rows}


def nll_by_position(m: ModelUnderTest, s: SharedInputs) -> dict:
    c = s.config
    return {"nll_by_position": position_nll.nll_by_position(
        m.model, s.split, c.nll_position_bins, c.nll_sequences, c.time_limit,
        c.bootstrap_seed, c.bootstrap_resamples)}


def tokenizer_round_trip(m: ModelUnderTest, s: SharedInputs) -> dict:
    return {"tokenizer_round_trip": s.round_trip, "pesq": s.round_trip.get("pesq"),
            "stoi": s.round_trip.get("stoi")}


def audio_token_rate(split: EvalSplit) -> float | None:
    """Audio tokens per second of the split's tokenizer (None without one)."""
    tokenizer = split.manifest.get("audio_tokenizer")
    return float(tokenizer["rate_hz"]) if tokenizer else None


def continuations(m: ModelUnderTest, s: SharedInputs) -> dict:
    c, rate = s.config, audio_token_rate(s.split)
    return {"continuations": gq.continuation_samples(
        m.model, s.split, os.path.join(s.staging, "samples"), m.label, c.samples,
        max(1, int(c.prompt_seconds * rate)), max(1, int(c.continuation_seconds * rate)))}


def efficiency_step(m: ModelUnderTest, s: SharedInputs) -> dict:
    lengths = {"seconds": s.config.efficiency_seconds, "tokens": s.config.efficiency_tokens}
    return {"efficiency": efficiency.evaluate_efficiency(
        m.model, s.split, m.task, lengths[m.task.efficiency_unit], s.config.time_limit,
        tokens_per_second=audio_token_rate(s.split))}


STEPS = {
    "accuracy": accuracy, "long_form": long_form_step, "streaming": streaming,
    "adaptation": adaptation_step, "fast_weight_ablation": fast_weight_ablation, "quantized": quantized,
    "nll": nll, "nll_by_position": nll_by_position, "tokenizer_round_trip": tokenizer_round_trip,
    "continuations": continuations, "efficiency": efficiency_step,
}
