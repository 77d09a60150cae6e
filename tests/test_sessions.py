"""Sessions: rows of one recording (speaker and chapter) joined, cut by duration, planned over the
whole split before shuffling, and read back whole by the local loader and by Ray Data."""

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import UserError
from pipeline.loading import LocalLoader
from pipeline.manifest import FORMAT_VERSION
from pipeline.session_plan import SessionReader, plan_sessions
from pipeline.sessions import SessionConfig, join_runs, recording_of, session_runs

MANIFEST = {"text_tokenizer": {"kind": "char", "symbols": [" ", "a", "b"]}}
N_MELS = 2


def pool():
    """Two speakers, rows shuffled; spk1 has 5 utterances of 4 s, spk2 one of 50 s."""
    rows = [("spk1-1-%d" % i, "spk1", "ab"[i % 2] * (i + 1), 4.0) for i in range(5)]
    rows.append(("spk2-1-0", "spk2", "ba", 50.0))
    random.Random(0).shuffle(rows)
    frames = [int(d * 100) for *_, d in rows]
    return {"utt_id": [r[0] for r in rows], "speaker": [r[1] for r in rows],
            "text": [r[2] for r in rows], "duration": [r[3] for r in rows], "num_frames": frames,
            "features": [np.full(f * 2, float(r[0][-1]), np.float16).tobytes() for r, f in zip(rows, frames)],
            "token_ids": [[2 if c == "a" else 3 for c in r[2]] for r in rows],
            # audio tokens (a generator's sessions): 3 per second, each the utterance's index
            "audio_tokens": [np.full(int(3 * r[3]), int(r[0][-1]), np.int64) for r in rows]}


def test_sessions_join_one_speakers_utterances_in_recording_order():
    rows = pool()
    runs = session_runs(rows["speaker"], rows["utt_id"], rows["duration"], SessionConfig(8.0, 12.0),
                        random.Random(1))
    out = join_runs(rows, runs, MANIFEST)
    assert sorted(out["speaker"]) == ["spk1", "spk1", "spk2"]
    spk1 = sorted((i for i, s in enumerate(out["speaker"]) if s == "spk1"), key=lambda i: out["utt_id"][i])
    ids = [out["utt_id"][i].split("+") for i in spk1]
    assert sum(ids, []) == [f"spk1-1-{i}" for i in range(5)]            # all, in order, once
    for i, parts in zip(spk1, ids):
        n = len(parts)
        assert out["duration"][i] == 4.0 * n and 8.0 <= out["duration"][i] <= 12.0
        first = int(parts[0][-1])
        texts = ["ab"[k % 2] * (k + 1) for k in range(first, first + n)]
        assert out["text"][i] == " ".join(texts)
        assert out["token_ids"][i] == sum(([1] + [2 if c == "a" else 3 for c in t] for t in texts), [])[1:]
        feats = np.frombuffer(out["features"][i], np.float16)
        assert out["num_frames"][i] == 400 * n and len(feats) == 800 * n
        assert feats[0] == first and feats[-1] == first + n - 1
        assert list(np.unique(feats)) == list(range(first, first + n))
        assert list(out["audio_tokens"][i]) == sum(([k] * 12 for k in range(first, first + n)), [])
    # a single utterance longer than max_seconds stays a session of its own
    assert out["duration"][out["speaker"].index("spk2")] == 50.0


def test_a_recording_is_a_librispeech_chapter_or_a_common_voice_client():
    assert recording_of("1462-170138-0000", "1462") == ("1462", "170138")
    assert recording_of("en/common_voice_en_17", "client9") == ("client9", "")
    assert recording_of("en/common_voice_en_17", "") == ("", "en/common_voice_en_17")
    assert recording_of("a-b-c", "someone") == ("someone", "")        # not the speaker's id


def index(seed=3):
    """3 speakers x 2 chapters of 40 utterances (1-6 s), a 55 s utterance in one chapter, and a
    Common Voice client with 25 clips; ids shuffled as shards would mix them."""
    rng = random.Random(seed)
    rows = [(f"{s}-{c}-{i:04d}", s, rng.uniform(1.0, 6.0))
            for s in ("11", "22", "33") for c in ("100", "200") for i in range(40)]
    rows[17] = (rows[17][0], rows[17][1], 55.0)
    rows += [(f"en/common_voice_en_{i}", "clientA", rng.uniform(1.0, 6.0)) for i in range(25)]
    rng.shuffle(rows)
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def test_sessions_hold_together_stay_within_bounds_and_follow_the_seed():
    ids, speakers, durations = index()
    config = SessionConfig(10.0, 40.0)
    runs = session_runs(speakers, ids, durations, config, random.Random(7))
    assert sorted(sum(runs, [])) == list(range(len(ids)))                # every row once
    for run in runs:
        assert len({recording_of(ids[i], speakers[i]) for i in run}) == 1  # one speaker and chapter
        assert [ids[i] for i in run] == sorted(ids[i] for i in run)        # in recording order
        seconds = sum(durations[i] for i in run)
        if len(run) == 1 and durations[run[0]] > config.max_seconds:
            continue                                                        # the 55 s utterance
        assert config.min_seconds <= seconds <= config.max_seconds
    # each recording's rows are consecutive runs: none is cut in two by anything but length
    assert runs == session_runs(speakers, ids, durations, config, random.Random(7))
    assert runs != session_runs(speakers, ids, durations, config, random.Random(8))


def test_a_short_last_run_is_merged_or_recut():
    # greedy cuts [5 5 5] or [5 5 5 4] by target, leaving 7 or 3 s: re-cut as [5 5] + [5 4 3]
    durations = [5.0, 5.0, 5.0, 4.0, 3.0]
    ids = [f"1-1-{i}" for i in range(5)]
    cuts = set()
    for seed in range(30):
        runs = session_runs(["1"] * 5, ids, durations, SessionConfig(10.0, 20.0), random.Random(seed))
        assert all(10.0 <= sum(durations[i] for i in r) <= 20.0 for r in runs), runs
        cuts.add(tuple(map(tuple, runs)))
    assert ((0, 1), (2, 3, 4)) in cuts
    # a short tail that fits is merged: [9 9] + [2] -> one 20 s session
    runs = session_runs(["1"] * 3, ids[:3], [9.0, 9.0, 2.0], SessionConfig(10.0, 20.0), random.Random(0))
    assert runs == [[0, 1, 2]]


def test_bad_session_bounds_are_a_user_error():
    with pytest.raises(UserError, match="min_seconds <= max_seconds"):
        SessionConfig(30.0, 10.0)


def write_split(root, shards=5, seed=0):
    """A preprocessed split whose recordings are spread over every shard."""
    ids, speakers, durations = index(seed)
    rng = np.random.default_rng(seed)
    rows = []
    for u, s, d in zip(ids, speakers, durations):
        frames = int(round(d * 100))
        rows.append({"utt_id": u, "speaker": s, "language": "en", "text": "ab", "duration": frames / 100,
                     "num_frames": frames,
                     "features": rng.normal(0, 1, (frames, N_MELS)).astype("<f2").tobytes(),
                     "token_ids": [2, 3]})
    split = root / "train"
    split.mkdir(parents=True)
    entries = []
    for k in range(shards):
        path = f"shard-{k:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows[k::shards]), split / path)
        entries.append({"path": path, "num_rows": len(rows[k::shards]), "sha256": ""})
    manifest = {"split": "train", "corpus": "librispeech", "num_utterances": len(rows), "hours": 0.1,
                "feature": {"kind": "log-mel", "sample_rate": 16000, "n_mels": N_MELS, "win_length": 400,
                            "hop_length": 160, "n_fft": 400, "dtype": "float16"},
                "cmvn": {"mean": [0.0] * N_MELS, "std": [1.0] * N_MELS, "computed_on": ["train"]},
                "text_tokenizer": {"kind": "char", "vocab_size": 3, "blank_id": 0, "symbols": [" ", "a"]},
                "audio_tokenizer": None, "shards": entries, "content_hash": "h",
                "format_version": FORMAT_VERSION}
    (split / "manifest.json").write_text(json.dumps(manifest))
    return split, {r["utt_id"]: r for r in rows}


def test_the_plan_reads_only_index_columns_and_sessions_span_shards(tmp_path):
    split, rows = write_split(tmp_path)
    shards = sorted(str(p) for p in split.glob("shard-*.parquet"))
    plan = plan_sessions(shards, SessionConfig(10.0, 40.0), seed=0)
    assert sorted(sum(plan.utt_ids, [])) == sorted(rows)
    assert any(len({shard for shard, _ in s}) > 1 for s in plan.sessions)   # joined across shards
    assert plan == plan_sessions(shards, SessionConfig(10.0, 40.0), seed=0)
    summary = plan.summary()
    assert summary["sessions"] == len(plan.sessions) and summary["session_utterances"] == len(rows)
    assert summary["session_min_seconds"] >= 10.0 and summary["session_max_seconds"] == 55.0
    assert summary["sessions_below_min"] == 0 and summary["sessions_above_max"] == 1
    assert 10.0 <= summary["session_median_seconds"] <= 40.0
    assert "sessions:" in plan.describe()

    # read back: each session's rows, in order, joined
    reader = SessionReader(plan, ["utt_id", "num_frames", "features"], {})
    out = reader.read([3, 0])
    for j, k in enumerate([3, 0]):
        assert out["utt_id"][j] == "+".join(plan.utt_ids[k])
        assert out["num_frames"][j] == sum(rows[u]["num_frames"] for u in plan.utt_ids[k])
        assert out["features"][j] == b"".join(rows[u]["features"] for u in plan.utt_ids[k])


def test_local_loader_batches_whole_sessions_whatever_the_pool(tmp_path):
    split, rows = write_split(tmp_path)
    loader = LocalLoader(str(split), batch_size=2, pool_size=2, seed=5, sessions=SessionConfig(10.0, 40.0))
    planned = {"+".join(ids) for ids in loader.session_plan.utt_ids}
    seen = []
    for batch in loader.epoch(0):
        for sid, frames in zip(batch["utt_ids"], batch["feature_lengths"].tolist()):
            parts = sid.split("+")
            assert len({recording_of(u, rows[u]["speaker"]) for u in parts}) == 1
            assert frames == sum(rows[u]["num_frames"] for u in parts)
            seen.append(sid)
    assert sorted(seen) == sorted(planned)                       # every session once, none split
    again = [sid for b in LocalLoader(str(split), batch_size=2, pool_size=2, seed=5,
                                      sessions=SessionConfig(10.0, 40.0)).epoch(0) for sid in b["utt_ids"]]
    assert again == seen                                         # the same seed, the same order
    later = [sid for b in loader.epoch(1) for sid in b["utt_ids"]]
    assert sorted(later) == sorted(seen) and later != seen       # same sessions, reshuffled


@pytest.mark.integration
def test_ray_dataset_rows_are_the_planned_sessions(tmp_path, ray_cluster):
    from pipeline.loading import iter_worker_batches, ray_dataset

    split, rows = write_split(tmp_path)
    loader = LocalLoader(str(split), sessions=SessionConfig(10.0, 40.0), seed=2)
    plan = loader.session_plan
    ds = ray_dataset(str(split), sessions=plan, seed=2).materialize()
    got = ds.take_all()
    assert sorted(r["utt_id"] for r in got) == sorted("+".join(ids) for ids in plan.utt_ids)
    for r in got:
        parts = r["utt_id"].split("+")
        assert r["features"] == b"".join(rows[u]["features"] for u in parts)
        assert r["duration"] == pytest.approx(sum(rows[u]["duration"] for u in parts))
        assert list(r["token_ids"]) == sum(([1, 2, 3] for _ in parts), [])[1:]
    # a Train worker's batches (the same iterator API as its dataset shard): whole sessions
    seen = []
    for batch in iter_worker_batches(ds.iterator(), loader.manifest, batch_size=3, pool_size=4):
        for sid, frames in zip(batch["utt_ids"], batch["feature_lengths"].tolist()):
            assert frames == sum(rows[u]["num_frames"] for u in sid.split("+"))
            seen.append(sid)
    assert sorted(seen) == sorted(r["utt_id"] for r in got)


def test_a_training_plan_prints_and_records_the_real_session_lengths(tmp_path, capsys):
    from jobs.training.config import load_config
    from jobs.training.plan import make_plan

    write_split(tmp_path / "features")
    model = {"hidden_size": 16, "num_layers": 1, "num_attention_heads": 2, "num_lact_heads": 2,
             "chunk_size": 16, "window_size": 4}
    cfg = load_config(None, [f"data.root={tmp_path / 'features'}", "data.dev=train",
                             f"output={tmp_path / 'runs'}", "data.sessions={min_seconds: 10, max_seconds: 40}",
                             *(f"model.config.{k}={v}" for k, v in model.items())])
    plan = make_plan(cfg)
    summary = plan.sessions.summary()
    assert summary["session_utterances"] == 265 and summary["sessions"] == len(plan.sessions.sessions)
    identity = plan.data_identity
    assert identity["train_sessions"] == summary["sessions"]
    assert identity["train_session_median_seconds"] == summary["session_median_seconds"]
    assert f"sessions: {summary['sessions']} from 265 utterances" in capsys.readouterr().out
    assert make_plan(load_config(None, [f"data.root={tmp_path / 'features'}", "data.dev=train",
                                        f"output={tmp_path / 'runs'}"])).sessions is None
