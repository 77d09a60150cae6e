"""Session formation: consecutive utterances of one speaker joined, cut by duration."""

import random

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.sessions import SessionConfig, join_sessions, session_runs

MANIFEST = {"text_tokenizer": {"kind": "char", "symbols": [" ", "a", "b"]}}


def pool():
    """Two speakers, rows shuffled; spk1 has 5 utterances of 4 s, spk2 one of 50 s."""
    rows = [("spk1-1-%d" % i, "spk1", "ab"[i % 2] * (i + 1), 4.0) for i in range(5)]
    rows.append(("spk2-1-0", "spk2", "ba", 50.0))
    random.Random(0).shuffle(rows)
    frames = [int(d * 100) for *_, d in rows]
    return {"utt_id": [r[0] for r in rows], "speaker": [r[1] for r in rows],
            "text": [r[2] for r in rows], "duration": [r[3] for r in rows], "num_frames": frames,
            "features": [np.full(f * 2, float(r[0][-1]), np.float16).tobytes() for r, f in zip(rows, frames)],
            "token_ids": [[2 if c == "a" else 3 for c in r[2]] for r in rows]}


def test_sessions_join_one_speakers_utterances_in_recording_order():
    out = join_sessions(pool(), MANIFEST, SessionConfig(8.0, 12.0), random.Random(1))
    assert sorted(out["speaker"]) == ["spk1", "spk1", "spk2"]
    spk1 = sorted((i for i, s in enumerate(out["speaker"]) if s == "spk1"), key=lambda i: out["utt_id"][i])
    ids = [out["utt_id"][i].split("+") for i in spk1]
    assert sum(ids, []) == [f"spk1-1-{i}" for i in range(5)]            # all, in order, once
    for i, parts in zip(spk1, ids):
        n = len(parts)
        assert out["duration"][i] == 4.0 * n and out["duration"][i] <= 12.0
        first = int(parts[0][-1])
        texts = ["ab"[k % 2] * (k + 1) for k in range(first, first + n)]
        assert out["text"][i] == " ".join(texts)
        assert out["token_ids"][i] == sum(([1] + [2 if c == "a" else 3 for c in t] for t in texts), [])[1:]
        feats = np.frombuffer(out["features"][i], np.float16)
        assert out["num_frames"][i] == 400 * n and len(feats) == 800 * n
        assert feats[0] == first and feats[-1] == first + n - 1
        assert list(np.unique(feats)) == list(range(first, first + n))
    # a single utterance longer than max_seconds stays a session of its own
    assert out["duration"][out["speaker"].index("spk2")] == 50.0


def test_session_length_stays_within_bounds_and_follows_the_seed():
    rng = random.Random(3)
    durations = [rng.uniform(1.0, 6.0) for _ in range(300)]
    ids = [f"s{i // 100}-{i % 100:03d}" for i in range(300)]
    speakers = [i.split("-")[0] for i in ids]
    runs = session_runs(speakers, ids, durations, SessionConfig(10.0, 40.0), random.Random(7))
    assert sorted(sum(runs, [])) == list(range(300))
    totals = [sum(durations[i] for i in r) for r in runs]
    assert all(t <= 40.0 for t in totals)
    assert sum(t >= 10.0 for t in totals) >= len(totals) - 3          # the last of each speaker may be short
    assert runs == session_runs(speakers, ids, durations, SessionConfig(10.0, 40.0), random.Random(7))
    assert runs != session_runs(speakers, ids, durations, SessionConfig(10.0, 40.0), random.Random(8))


def test_bad_session_bounds_are_a_user_error():
    with pytest.raises(UserError, match="min_seconds <= max_seconds"):
        SessionConfig(30.0, 10.0)
