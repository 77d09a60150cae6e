"""The evaluation suites, one metric at a time, on a tiny split (tests/eval_split.py) and tiny
untrained models: scoring, per-speaker sums, limits on long-form decodes, streaming, chained
adaptation state, the fast-weight ablation switch, efficiency and the tokenizer round trip."""

from __future__ import annotations

import time

import pytest
import torch

from eval_split import SPEAKERS, one_torch_thread, write_split  # noqa: F401 (autouse)
from jobs.evaluation import accuracy, adaptation, efficiency, long_form, recordings, streaming
from jobs.evaluation.data import read_split
from jobs.evaluation.limits import OUT_OF_MEMORY, TIME_LIMIT, run_limited
from jobs.tasks import task_named
from models import LaCTAudioConfig, build_model


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return read_split(write_split(str(tmp_path_factory.mktemp("evalsplit"))), audio_tokens=True)


@pytest.fixture(scope="module")
def tokenizer(split):
    from pipeline.text_tokenizer import load_text_tokenizer

    return load_text_tokenizer(split.manifest, split.uri)


def tiny(task="asr", arch="lact", causal=False, vocab=20, seed=0):
    torch.manual_seed(seed)
    config = LaCTAudioConfig(hidden_size=32, num_layers=2, num_attention_heads=4, num_lact_heads=2,
                             chunk_size=16, window_size=8, vocab_size=vocab, dropout=0.0, mel_bins=80,
                             audio_vocab_size=256, lact_causal=causal)
    return build_model(task_named(task).models, arch, config).eval()


def test_perfect_hypothesis_scores_zero_and_one_wrong_word_does_not():
    refs = ["one two three", "four five"]
    assert accuracy.scores(refs, refs)["wer"] == 0.0
    assert accuracy.scores(refs, refs)["cer"] == 0.0
    wrong = accuracy.scores(refs, ["one two tree", "four five"])
    assert wrong["wer"] == pytest.approx(1 / 5)
    assert wrong["char_errors"] == 1 and wrong["char_total"] == len("one two three") + len("four five")


def test_split_is_read_in_speaker_then_recording_order(split):
    ids = [u.utt_id for u in split.utterances]
    assert ids == sorted(ids)
    assert {s: len(u) for s, u in split.by_speaker().items()} == SPEAKERS
    assert split.frame_rate == 100.0


def test_per_speaker_and_per_language_counts_sum_to_the_overall(split, tokenizer):
    model = tiny(vocab=tokenizer.vocab_size)
    report = accuracy.accuracy_report(model, split.utterances, tokenizer, beam=True, beam_size=4)
    assert set(report["per_speaker"]) == set(SPEAKERS)
    for field in ("char_errors", "char_total", "word_errors", "word_total", "utterances"):
        assert sum(s[field] for s in report["per_speaker"].values()) == report[field]
        assert report["per_language"]["en"][field] == report[field]
    assert report["utterances"] == sum(SPEAKERS.values())
    # batching must not change hypotheses: one utterance at a time gives the same score
    one_by_one = [accuracy.transcribe(model, [u.features], tokenizer)[0] for u in split.utterances]
    assert accuracy.scores([u.text for u in split.utterances], one_by_one)["cer"] == pytest.approx(report["cer"])
    assert 0.0 <= report["beam"]["cer"] and report["beam"]["beam_size"] == 4


class _RaisesOOM(torch.nn.Module):
    """Decodes utterances (at most 1.1 s); runs out of memory on recordings (at least 2 s)."""
    def forward(self, features, lengths=None):
        if features.shape[1] > 150:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return torch.zeros(features.shape[0], 3, 5), torch.full((features.shape[0],), 3)


class _Slow(torch.nn.Module):
    """Decodes utterances; takes 5 s on a recording."""
    def forward(self, features, lengths=None):
        if features.shape[1] > 150:
            time.sleep(5)
        return torch.zeros(features.shape[0], 3, 5), torch.full((features.shape[0],), 3)


def test_out_of_memory_and_time_limit_are_recorded_not_raised(split, tokenizer):
    sets = recordings.build_recording_sets(split, [2.0, 5.0], longest=False, count=1, wanted_speakers=1)
    result = long_form.evaluate_long_form(_RaisesOOM(), sets, tokenizer, 50, time_limit=10, resamples=200)
    rows = result["recordings"]
    assert [r["status"] for r in rows] == [OUT_OF_MEMORY, OUT_OF_MEMORY]
    assert "80.00 GiB" in rows[0]["detail"] and "not run" in rows[1]["detail"]
    assert rows[0]["cer"] is None and rows[0]["segmented"]["char_total"] > 0   # segmented still scored
    assert [x["failed"] for x in result["lengths"]] == [{OUT_OF_MEMORY: 1}] * 2
    assert all(x["decoded"] == 0 and x["context_gain"]["status"] == "not_measured" for x in result["lengths"])
    started = time.perf_counter()
    rows = long_form.evaluate_long_form(_Slow(), sets, tokenizer, 50, time_limit=0.3, resamples=200)["recordings"]
    assert time.perf_counter() - started < 3          # the sleep was interrupted
    assert [r["status"] for r in rows] == [TIME_LIMIT, TIME_LIMIT]
    with pytest.raises(ZeroDivisionError):              # other errors are not hidden
        run_limited(lambda: 1 / 0, 5)


def test_skip_fast_weight_updates_keeps_initial_weights_and_restores(split):
    from models.lact_layer import LaCTLayer, skip_fast_weight_updates

    model = tiny()
    layer = next(m for m in model.modules() if isinstance(m, LaCTLayer))
    x = torch.randn(1, 40, 32)
    normal, fast = layer(x, return_fast=True)
    with skip_fast_weight_updates(model):
        skipped, kept = layer(x, return_fast=True)
        for w, w0 in zip(kept, layer.initial_fast_weights(1)):
            torch.testing.assert_close(w, w0)
    assert not torch.allclose(normal, skipped)
    again, fast_again = layer(x, return_fast=True)      # switched back on
    torch.testing.assert_close(again, normal)
    assert not torch.allclose(fast_again[0], layer.initial_fast_weights(1)[0])


def test_streaming_matches_offline_and_keeps_state_flat(split, tokenizer):
    causal = tiny(causal=True, vocab=tokenizer.vocab_size)
    result = streaming.evaluate_streaming(causal, split, tokenizer, chunk_frames=25, stream_seconds=20,
                                          time_limit=None)
    assert result["streaming_cer"] == pytest.approx(result["offline_cer"])
    assert result["same_hypotheses"] == 1.0
    stream = result["long_stream"]
    assert stream["status"] == "ok" and stream["stream_seconds"] >= 20
    assert stream["latency_p95_ms"] >= stream["latency_p50_ms"] > 0
    sizes = [p["state_bytes"] for p in stream["memory"]]
    assert max(sizes) < 1.5 * min(sizes)                # bounded: no growth with the stream
    assert streaming.evaluate_streaming(tiny(vocab=tokenizer.vocab_size), split, tokenizer, 25, 20, 60)[
        "status"] == "not_applicable"


def test_adaptation_against_utterance_counts(split, tokenizer):
    model = tiny(vocab=tokenizer.vocab_size)
    result = adaptation.chained_state(model, split, tokenizer, counts=[0, 1, 2, 4, 8])
    assert [r["utterances"] for r in result["by_count"]] == [0, 1, 2, 4, 8]
    # only speaker 1001 has more than 8 utterances: its last 2 are held out at every k
    assert {(r["speakers"], r["held_out_utterances"]) for r in result["by_count"]} == {(1, 2)}
    held = split.by_speaker()["1001"][8:]
    unadapted = accuracy.scores([u.text for u in held],
                                accuracy.transcribe(model, [u.features for u in held], tokenizer))["cer"]
    assert result["by_count"][0]["cer"] == pytest.approx(unadapted)
    assert model.speaker_fast_weights is None           # the model is left unadapted
    # by position in a speaker's session: position 1 carries nothing, so fresh == carried there;
    # every utterance is counted once, positions 9 and later pooled
    rows = result["by_position"]
    assert [r["position"] for r in rows][0] == 1 and rows[0]["fresh_cer"] == rows[0]["carried_cer"]
    assert sum(r["utterances"] for r in rows) == len(split.utterances)
    assert rows[0]["utterances"] == len(split.by_speaker())
    assert [r["position"] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 8, "9+"]
    assert rows[-1]["utterances"] == len(held)
    fresh = accuracy.scores([u.text for u in split.utterances],
                            accuracy.transcribe(model, [u.features for u in split.utterances], tokenizer))
    assert result["fresh_cer"] == pytest.approx(fresh["cer"])
    # carrying the state changes what the model hears (the fast weights differ)
    first = split.by_speaker()["1001"]
    model.adapt_to_speaker([first[0].features])
    assert model.speaker_fast_weights is not None
    model.reset_speaker()
    assert adaptation.chained_state(tiny("asr", "baseline", vocab=tokenizer.vocab_size), split,
                                     tokenizer)["status"] == "not_applicable"


def test_efficiency_flops_and_latency_grow_with_length(split):
    model = tiny()
    rows = efficiency.evaluate_efficiency(model, split, "asr", [1.0, 4.0], time_limit=60)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert rows[1]["flops"] > 3 * rows[0]["flops"] > 0
    for r in rows:
        assert r["rtf"] == pytest.approx(r["latency_s"] / r["seconds"])
    # activations grow with the input: 4x the audio holds more live tensor bytes at its peak
    assert rows[1]["peak_memory_bytes"] > 2 * rows[0]["peak_memory_bytes"] > 0


def test_cpu_peak_memory_counts_tensors_freed_before_the_call_returns():
    from jobs.evaluation.measure import measure

    def allocate():
        kept = torch.ones(1_000_000)                  # 4 MB, returned
        scratch = torch.ones(4_000_000)               # 16 MB, freed inside the call
        del scratch
        return kept

    result = measure(allocate)
    assert 20_000_000 <= result.peak_bytes < 21_000_000    # both were live at once
    assert result.value.numel() == 1_000_000
    assert measure(allocate, memory=False).peak_bytes is None


def test_tokenizer_round_trip(split):
    from jobs.evaluation import generation_quality as gq

    rt = gq.tokenizer_round_trip(split, utterances=4)
    assert rt["utterances"] == 4 and rt["tokenizer"] == "mulaw"
    assert 1.0 <= rt["pesq"] <= 4.65 and 0.3 < rt["stoi"] <= 1.0


def test_time_limit_puts_an_outer_alarm_back():
    import signal

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *a: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        assert run_limited(lambda: 7, time_limit=5).value == 7
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < left <= 30 and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_every_name_a_task_lists_has_its_evaluation_step_section_and_study():
    """The task objects name what the evaluation engine runs for them (issue 30: no engine
    compares task names); every name must exist on the engine's side."""
    from jobs.evaluation.comparison import PAIRED_SECTIONS
    from jobs.evaluation.report import SECTIONS
    from jobs.evaluation.steps import STEPS
    from jobs.evaluation.suite import FULL, LONG_FORM, QUICK
    from jobs.tasks import TASKS
    from jobs.tuning.study_eval import STUDIES

    for task in TASKS.values():
        assert set(task.evaluation_steps) == {QUICK, LONG_FORM, FULL}
        assert all(step in STEPS for steps in task.evaluation_steps.values() for step in steps)
        assert set(task.report_sections) <= set(SECTIONS)
        assert set(task.paired_sections) <= set(PAIRED_SECTIONS)
        assert task.study_pooling in STUDIES
        assert task.dev_metric in task.paired_metrics
