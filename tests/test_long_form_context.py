"""Evaluation in the condition a model was trained for, on a tiny real split (tests/eval_split.py:
real log-mel features, CMVN, character tokenizer, μ-law tokens, a Parquet shard) and tiny
untrained models: long-form recordings joined per chapter and their counts, one pass against
segmented and the context gain's interval, sessions in one pass and streamed, chained state only
where training carried state, and generator NLL by position bin."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from eval_split import one_torch_thread, write_checkpoint, write_split  # noqa: F401 (autouse)
from jobs.evaluation import adaptation, long_form, position_nll, recordings
from jobs.evaluation.accuracy import scores, transcribe
from jobs.evaluation.comparison import compare_pair
from jobs.evaluation.context_gain import context_gain
from jobs.evaluation.data import EvalSplit, read_split
from jobs.evaluation.generation_quality import position_nll_bits
from jobs.evaluation.training_condition import training_condition
from jobs.tasks import task_named
from models import LaCTAudioConfig, build_model
from pipeline.errors import UserError

# Two chapters of one speaker, and speakers of different lengths (utterances are 0.8-1.1 s).
RECORDINGS = {"1001": 10, "1001-2": 4, "1002": 4, "1003": 3, "1004": 6}


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return read_split(write_split(str(tmp_path_factory.mktemp("chapters")), RECORDINGS), audio_tokens=True)


@pytest.fixture(scope="module")
def tokenizer(split):
    from pipeline.text_tokenizer import load_text_tokenizer

    return load_text_tokenizer(split.manifest, split.uri)


def tiny(task="asr", arch="lact", causal=False, vocab=20, chunk=16):
    torch.manual_seed(0)
    config = LaCTAudioConfig(hidden_size=32, num_layers=2, num_attention_heads=4, num_lact_heads=2,
                             chunk_size=chunk, window_size=8, vocab_size=vocab, dropout=0.0, mel_bins=80,
                             audio_vocab_size=256, lact_causal=causal)
    return build_model(task_named(task).models, arch, config).eval()


def consecutive_in_chapter(split, rec) -> bool:
    chapter = recordings.chapters(split)[rec.chapter]
    start = chapter.index(rec.utterances[0])
    return chapter[start: start + len(rec.utterances)] == rec.utterances


def test_recordings_never_mix_speakers_and_their_counts_are_the_truth(split):
    sets = recordings.build_recording_sets(split, [5.0, 2.0, 1000.0], longest=True, count=30, wanted_speakers=10)
    assert [s.length for s in sets] == ["2s", "5s", "1000s", "longest"]
    chapters = recordings.chapters(split)
    assert set(chapters) == {"1001-1", "1001-2", "1002-1", "1003-1", "1004-1"}
    for s in sets:
        ids = [u for r in s.recordings for u in r.utt_ids]
        assert len(ids) == len(set(ids))                       # no utterance twice in one set
        for rec in s.recordings:
            assert {u.speaker for u in rec.utterances} == {rec.speaker}
            assert {recordings.chapter_of(u) for u in rec.utterances} == {rec.chapter}
            assert consecutive_in_chapter(split, rec)
            assert torch.equal(rec.features(), torch.cat([u.features for u in rec.utterances]))
            assert rec.text == " ".join(u.text for u in rec.utterances)
            if s.target_seconds is not None:                   # stops at the first utterance past it
                assert s.seconds(rec) >= s.target_seconds
                assert (rec.frames() - rec.utterances[-1].features.shape[0]) / 100 < s.target_seconds
        summary = s.summary()
        assert summary["recordings"] == len(s.recordings)
        assert summary["speakers"] == len({r.speaker for r in s.recordings})
        assert summary["chapters"] == len({r.chapter for r in s.recordings})
    short, medium, too_long, longest = sets
    # every chapter is used up to a leftover shorter than the target (dropped, never padded)
    for name, utts in chapters.items():
        used = [u for r in short.recordings if r.chapter == name for u in r.utterances]
        assert used == utts[:len(used)]
        assert sum(u.features.shape[0] for u in utts[len(used):]) / 100 < 2.0
    # only 4 speakers exist: the shortfall is said, not hidden
    assert short.summary()["speakers"] == 4
    assert any("4 speakers, fewer than the 10" in n for n in short.notes)
    assert too_long.recordings == [] and too_long.summary()["recordings"] == 0
    assert too_long.notes[0].startswith("0 recordings, not the 30 asked for: 0 of 5 chapters hold 1000 s")
    # the longest set: each chapter whole, longest first
    assert [r.chapter for r in longest.recordings][0] == "1001-1"
    assert sorted(r.utt_ids for r in longest.recordings) == sorted([u.utt_id for u in c] for c in chapters.values())
    # a cap takes chapters round-robin, so the recordings spread over speakers
    capped = recordings.build_recording_sets(split, [2.0], longest=False, count=3, wanted_speakers=3)[0]
    assert len({r.chapter for r in capped.recordings}) == 3 and capped.notes == []
    with pytest.raises(UserError):
        recordings.build_recording_sets(split, [2.0], longest=False, count=0, wanted_speakers=1)
    with pytest.raises(UserError):
        recordings.build_recording_sets(split, [-1.0], longest=False, count=3, wanted_speakers=1)


def test_one_pass_against_segmented_gives_the_context_gain_with_its_interval(split, tokenizer):
    model = tiny(vocab=tokenizer.vocab_size)
    sets = recordings.build_recording_sets(split, [2.0, 4.0], longest=True, count=30, wanted_speakers=2)
    result = long_form.evaluate_long_form(model, sets, tokenizer, chunk_frames=50, time_limit=60,
                                          seed=1, resamples=500)
    rows = result["recordings"]
    assert result["mode"] == "one_forward"
    assert len(rows) == sum(len(s.recordings) for s in sets) and all(r["status"] == "ok" for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    # one recording checked by hand: one forward over the joined features, and utterance by utterance
    rec = sets[1].recordings[0]
    row = next(r for r in rows if r["id"] == rec.id)
    one = long_form.decode_one_pass(model, rec.features(), tokenizer, 50, stream=False)
    assert row["char_errors"] == scores([rec.text], [one])["char_errors"]
    alone = transcribe(model, [u.features for u in rec.utterances], tokenizer)
    assert row["segmented"]["char_errors"] == scores([rec.text], [" ".join(h for h in alone if h)])["char_errors"]
    assert row["segmented"]["char_total"] == row["char_total"]
    for summary in result["lengths"]:
        mine = [r for r in rows if r["length"] == summary["length"]]
        gain = summary["context_gain"]
        seg = sum(r["segmented"]["char_errors"] for r in mine)
        total = sum(r["char_total"] for r in mine)
        assert gain["status"] == "ok" and gain["units"] == len(mine) == summary["decoded"]
        assert gain["difference"] == pytest.approx((seg - sum(r["char_errors"] for r in mine)) / total)
        assert gain["low"] <= gain["difference"] <= gain["high"]
        assert gain["segmented"] == pytest.approx(summary["segmented"]["cer"])
        assert gain["one_pass"] == pytest.approx(summary["one_pass"]["cer"])
    assert result["context_gain"]["units"] == len(rows)
    assert context_gain([])["status"] == "not_measured"
    # a block-causal model streams its one pass, and streaming gives its one-forward output
    causal = tiny(causal=True, vocab=tokenizer.vocab_size)
    streamed = long_form.decode_recordings(causal, sets, tokenizer, 50, 60)
    forward = long_form.decode_recordings(causal, sets, tokenizer, 50, 60, stream=False)
    assert {r["mode"] for r in streamed} == {"streamed"} and {r["mode"] for r in forward} == {"one_forward"}
    assert [r["char_errors"] for r in streamed] == [r["char_errors"] for r in forward]
    # models pair over recordings: pooled, per length, and their context gains against each other
    other = long_form.evaluate_long_form(tiny("asr", "full_attention", vocab=tokenizer.vocab_size), sets,
                                         tokenizer, 50, 60, seed=1, resamples=500)
    pair = compare_pair({"task": "asr", "long_form": result}, {"task": "asr", "long_form": other}, resamples=500)
    assert set(pair) == {"long_form_cer", "long_form_wer", "long_form_cer_2s", "long_form_cer_4s",
                         "long_form_cer_longest", "long_form_context_gain"}
    assert pair["long_form_cer"]["units"] == len(rows) and pair["long_form_cer_2s"]["units"] == len(sets[0].recordings)
    gap = pair["long_form_context_gain"]
    assert gap["difference"] == pytest.approx(result["context_gain"]["difference"]
                                              - other["context_gain"]["difference"])


def test_nll_by_position_bins_counts_whole_bins_per_sequence_and_says_what_it_omits(split):
    # 300 tokens an utterance: chapters of 900 to 3000 tokens
    short = EvalSplit(split.info, [replace(u, audio_tokens=u.audio_tokens[:300]) for u in split.utterances])
    model = tiny("generation", chunk=64)
    result = position_nll.nll_by_position(model, short, [0, 64, 256, 1024, 4096], count=30, time_limit=60,
                                          resamples=300)
    bins = result["bins"]
    assert [b["label"] for b in bins] == ["0-64", "64-256", "256-1k"]
    assert all(a["hi"] == b["lo"] and a["lo"] < a["hi"] for a, b in zip(bins, bins[1:]))
    assert result["omitted"] == [{"label": "1k-4k", "lo": 1024, "hi": 4096,
                                  "reason": "no sequence reaches 4096 tokens (longest 3000)"}]
    seqs = result["sequences"]
    assert sorted(s["chapter"] for s in seqs) == sorted(recordings.chapters(split))
    assert {s["id"]: s["length"] for s in seqs}["1003-1/0"] == 900
    assert bins[2]["sequences"] == 4 and "256-1k" not in {s["id"]: s["bins"] for s in seqs}["1003-1/0"]
    for b in bins:
        inside = [s["bins"][b["label"]] for s in seqs if b["label"] in s["bins"]]
        assert all(x["tokens"] == b["hi"] - max(b["lo"], 1) for x in inside)
        assert b["nll_bits"] == pytest.approx(sum(x["bits"] for x in inside) / sum(x["tokens"] for x in inside))
        assert b["low"] <= b["nll_bits"] <= b["high"]
        assert 6.0 < b["nll_bits"] < 10.0              # untrained on 256 symbols: about 8 bits a token
    # a sequence is its chapter's tokens in recording order, scored in one pass
    chapter = recordings.chapters(short)["1002-1"]
    tokens = torch.cat([u.audio_tokens for u in chapter])
    bits = position_nll_bits(model, tokens)
    got = next(s for s in seqs if s["chapter"] == "1002-1")["bins"]["64-256"]
    assert got["bits"] == pytest.approx(float(bits[63:255].sum()), rel=1e-5)
    # paired per bin across models, over the sequences both scored
    other = position_nll.nll_by_position(tiny("generation", "full_attention"), short, [0, 64, 256, 1024, 4096],
                                         30, 60, resamples=300)
    pair = compare_pair({"task": "generation", "nll_by_position": result},
                        {"task": "generation", "nll_by_position": other}, resamples=300)
    assert set(pair) == {"nll_bits_0-64", "nll_bits_64-256", "nll_bits_256-1k"}
    assert pair["nll_bits_256-1k"]["units"] == 4 and pair["nll_bits_256-1k"]["unit"] == "sequence"
    capped = position_nll.nll_by_position(model, short, [0, 64], count=2, time_limit=60, resamples=200)
    assert len({s["chapter"] for s in capped["sequences"]}) == 2
    for bad in ([64, 128], [0, 256, 128], [0]):
        with pytest.raises(UserError, match="increasing edges from 0"):
            position_nll.check_edges(bad)


def test_sessions_in_one_pass_and_streamed_and_chained_state_only_where_trained(split, tokenizer, tmp_path):
    vocab = tokenizer.vocab_size
    # what training ran on, read from the run file beside the checkpoint (Ray: RUN/checkpoint_N)
    conditions = {}
    for name, sessions in (("sessions", {"min_seconds": 2.0, "max_seconds": 4.0}), ("utterances", None)):
        ckpt = write_checkpoint(str(tmp_path / name / "checkpoint_000001"), "asr", "lact", vocab)
        (tmp_path / name / "lact_run.json").write_text(json.dumps({"config": {"data": {"sessions": sessions}}}))
        conditions[name] = training_condition(ckpt)
    assert conditions["sessions"]["condition"] == "sessions" and conditions["sessions"]["session_seconds"] == [2.0, 4.0]
    assert conditions["utterances"]["condition"] == "utterances"
    unknown = training_condition(write_checkpoint(str(tmp_path / "bare"), "asr", "lact", vocab))
    assert unknown["condition"] == "unknown" and "no training run file" in unknown["reason"]

    sessions = recordings.session_set(split, 2.0, 4.0)
    ids = [u for r in sessions.recordings for u in r.utt_ids]
    assert sorted(ids) == sorted(u.utt_id for u in split.utterances)        # each utterance once
    assert all(consecutive_in_chapter(split, r) for r in sessions.recordings)
    model = tiny(vocab=vocab)
    out = adaptation.evaluate_adaptation(model, split, tokenizer, [0, 1, 2], sessions, conditions["sessions"],
                                         chunk_frames=50, time_limit=60, resamples=300)
    one = out["one_pass_sessions"]
    assert one["mode"] == "one_forward" and one["recordings"] == len(sessions.recordings) == one["decoded"]
    assert one["context_gain"]["low"] <= one["context_gain"]["difference"] <= one["context_gain"]["high"]
    assert out["streamed_sessions"]["status"] == "not_applicable"             # bidirectional
    assert out["chained"]["status"] == "ok" and [r["utterances"] for r in out["chained"]["by_count"]] == [0, 1, 2]
    # trained on single utterances (or unknown): chained state is not its condition, unless asked
    for condition in (conditions["utterances"], unknown):
        skipped = adaptation.evaluate_adaptation(model, split, tokenizer, [0, 1], None, condition)
        assert skipped["chained"]["status"] == "not_run" and "--chained-state always" in skipped["chained"]["reason"]
    assert "single utterances" in adaptation.chained_decision(model, conditions["utterances"], "trained")
    forced = adaptation.evaluate_adaptation(model, split, tokenizer, [0, 1], None, conditions["utterances"], "always")
    assert forced["chained"]["status"] == "ok"
    with pytest.raises(UserError, match="--chained-state"):
        adaptation.evaluate_adaptation(model, split, tokenizer, [0], None, None, "sometimes")
    # block-causal: streamed across the session, the same output as its one forward
    causal = adaptation.evaluate_adaptation(tiny(causal=True, vocab=vocab), split, tokenizer, [0], sessions,
                                            conditions["utterances"], chunk_frames=50, time_limit=60, resamples=300)
    streamed = causal["streamed_sessions"]
    assert streamed["mode"] == "streamed"
    assert streamed["one_pass"]["char_errors"] == causal["one_pass_sessions"]["one_pass"]["char_errors"]
    # an arm without test-time updates: sessions yes, chained state not applicable
    full = adaptation.evaluate_adaptation(tiny("asr", "full_attention", vocab=vocab), split, tokenizer, [0],
                                          sessions, conditions["sessions"], resamples=300)
    assert full["chained"]["status"] == "not_applicable" and full["one_pass_sessions"]["decoded"] > 0
    # arms pair over the sessions: one-pass CER and context gain
    pair = compare_pair({"task": "asr", "adaptation": out}, {"task": "asr", "adaptation": full}, resamples=300)
    assert set(pair) == {"session_cer", "session_context_gain"}
    assert pair["session_cer"]["units"] == len(sessions.recordings) and pair["session_cer"]["unit"] == "session"


def test_chapters_follow_the_real_corpus_layouts(realspeech_dir):
    """Real LibriSpeech ids (speaker 1089 reads two chapters) and a real Common Voice clip."""
    import os
    from types import SimpleNamespace

    from jobs.evaluation.data import EvalUtterance
    from pipeline.readers import read_corpus
    from pipeline.records import Utterance

    def as_split(corpus, root, splits):
        found = [r for r in read_corpus(corpus, str(root), splits=splits) if isinstance(r, Utterance)]
        utts = [EvalUtterance(r.utt_id, r.speaker, r.language, r.text or "", 1.0, torch.zeros(100, 80), None)
                for r in sorted(found, key=lambda r: (r.speaker, r.utt_id))]
        info = SimpleNamespace(manifest={"feature": {"sample_rate": 16000, "hop_length": 160}})   # 100 frames/s
        return EvalSplit(info, utts), {r.utt_id: r for r in found}

    split, records = as_split("librispeech", realspeech_dir / "LibriSpeech", ["test-clean"])
    groups = recordings.chapters(split)
    assert {"1089-134686", "1089-134691"} <= set(groups)
    for name, utts in groups.items():   # a chapter is one folder SPEAKER/CHAPTER of the corpus
        folders = {os.path.dirname(records[u.utt_id].audio_uri) for u in utts}
        assert len(folders) == 1 and folders.pop().endswith(name.replace("-", "/"))
    one = recordings.build_recording_sets(split, [2.5], longest=False, count=30, wanted_speakers=1)[0]
    assert all(len({recordings.chapter_of(u) for u in r.utterances}) == 1 for r in one.recordings)
    split, _ = as_split("commonvoice", realspeech_dir / "CommonVoice", ["validated_subset"])
    assert [recordings.chapter_of(u) for u in split.utterances] == [u.speaker for u in split.utterances]
