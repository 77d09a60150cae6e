"""The nightly's promotion rule (margin + paired bootstrap interval), lock, decision folders,
failure flags and config errors (no Ray, no MLflow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobs.cli import main
from jobs.nightly.config import load_nightly
from jobs.nightly.decision import (FAILED, KEPT, PROMOTED, all_decisions, decide, failure_signature,
                                      repeated_failure, write_new_decision)
from jobs.nightly.lock import NightLock, holder
from pipeline.errors import UserError

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "configs" / "nightly.yaml")


def scores(errors: list[int], chars: int = 20) -> tuple[list[int], list[int]]:
    return errors, [chars] * len(errors)


def test_first_champion_and_promotion_by_margin_and_interval():
    assert decide(None, scores([5, 5]), 0.5)[0] == PROMOTED                  # the first champion
    champion = scores([6, 5, 7, 6, 5, 6, 7, 5] * 5)                          # CER ~0.29 on 40 utterances
    better = scores([2, 1, 3, 2, 1, 2, 3, 1] * 5)                           # every utterance better
    action, reason, interval = decide(champion, better, 0.1, resamples=2000)
    assert action == PROMOTED and interval["low"] > 0 and "excludes 0" in reason
    assert interval["difference"] == pytest.approx((sum(champion[0]) - sum(better[0])) / sum(champion[1]))
    # the same gain but above the margin: kept
    assert decide(champion, better, 0.5, resamples=2000)[0] == KEPT


def test_a_tie_or_a_gain_the_utterances_could_explain_keeps_the_champion():
    champion = scores([3, 4, 5, 6] * 10)
    action, reason, interval = decide(champion, champion, 0.0, resamples=2000)    # a tie, margin 0
    assert action == KEPT and interval["difference"] == 0 and "does not exclude 0" in reason
    # better on some utterances, worse on others: the mean gains but the interval straddles 0
    noisy = scores([0, 8, 1, 9] * 10)
    action, _, interval = decide(scores([4, 4, 5, 5] * 10), noisy, -1.0, resamples=2000)
    assert interval["low"] <= 0 <= interval["high"] and action == KEPT
    with pytest.raises(ValueError):
        decide(scores([1, 2]), scores([1, 2], chars=9), 0.0)                  # not the same utterances


def test_decision_folders_are_claimed_exclusively(tmp_path):
    day = datetime(2026, 11, 29, 2, 30, tzinfo=timezone.utc)
    first = write_new_decision(str(tmp_path), {"action": "kept", "date": "a"}, day)
    second = write_new_decision(str(tmp_path), {"action": "kept", "date": "b"}, day)
    assert first == f"{tmp_path}/2026-11-29/decision.json" and second == f"{tmp_path}/2026-11-29_2/decision.json"
    assert json.loads(Path(first).read_text())["date"] == "a"
    assert [d["date"] for d in all_decisions(str(tmp_path))] == ["a", "b"]


def test_the_same_failure_twice_is_flagged():
    one = failure_signature("UserError: version 3 of m cannot be scored on /x/run-20261203 (12 symbols)")
    two = failure_signature("UserError: version 4 of m cannot be scored on /x/run-20261204 (12 symbols)")
    assert one == two
    assert repeated_failure({"action": FAILED, "failure_signature": one}, two)
    assert not repeated_failure({"action": KEPT}, two) and not repeated_failure(None, two)
    assert failure_signature("KeyError: 'a'") != failure_signature("KeyError: 'b'")


def test_a_second_night_is_refused_while_the_lock_is_held(tmp_path):
    with NightLock(str(tmp_path), 1.0) as lock:
        assert holder(str(tmp_path))["owner"] == lock.owner
        with pytest.raises(UserError, match="another nightly run holds the lock"):
            NightLock(str(tmp_path), 1.0).acquire()
        lock.renew()
    assert holder(str(tmp_path)) is None
    # A lease that expired (its night died) is taken over.
    NightLock(str(tmp_path), -1.0).acquire()
    assert holder(str(tmp_path))["expired"]
    with NightLock(str(tmp_path), 1.0) as lock:
        assert holder(str(tmp_path))["owner"] == lock.owner


def test_a_concurrent_night_in_another_process_is_refused_in_one_line(tmp_path):
    home = tmp_path / "home"
    with NightLock(str(home / "nightly"), 1.0):
        # the CLI in another process, with this work directory: refused before any work
        proc = subprocess.run([sys.executable, "-m", "jobs.cli", "nightly", "--config", CONFIG, "--quiet"],
                              cwd=REPO, env={**os.environ, "LACT_AUDIO_HOME": str(home)},
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "another nightly run holds the lock" in proc.stderr
    assert not (home / "nightly" / "test_split.json").exists()


def test_shipped_configs_load():
    nightly = load_nightly(CONFIG)
    assert nightly.init == "champion" and nightly.promotion.alias == "champion"
    assert nightly.promotion.previous_alias == "previous-champion"
    assert Path(nightly.base_config).is_file()
    cluster = load_nightly(str(REPO / "configs" / "nightly-librispeech.yaml"))
    assert cluster.output.startswith("s3://") and cluster.corpus.input.startswith("s3://")


@pytest.mark.parametrize("overrides, words", [
    (["init=sideways"], "'init'"),
    (["promotion.margin=abc"], "'promotion.margin'"),
    (["promotion.challenger_alias=champion"], "three different"),
    (["promotion.previous_alias=champion"], "three different"),
    (["promotion.confidence=1.5"], "'promotion.confidence'"),
    (["lock_hours=0"], "'lock_hours'"),
    (["config.data.test=null"], "test split"),
    (["config.train.max_steps=0"], "train.max_steps"),
    (["corpus.nonsense=1"], "corpus.nonsense"),
    (["promotion"], "key=value"),
    (["status", "init=sideways"], "'init'"),
])
def test_bad_config_is_one_line(overrides, words, capsys):
    assert main(["nightly", "--config", CONFIG, *overrides]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_nightly(str(tmp_path / "none.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_config: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_nightly(str(bad))


def test_decisions_of_the_same_second_keep_their_order_past_nine_folders(tmp_path):
    # Nights that fail fast start in the same second; the tenth folder of a day (<day>_10) must
    # still sort after the ninth, or `nightly status` reads an older night as the latest.
    from jobs.nightly.decision import write_new_decision

    day = datetime(2026, 12, 4, tzinfo=timezone.utc)
    for i in range(12):
        write_new_decision(str(tmp_path), {"date": "2026-12-04T05:00:00+00:00", "night": i}, now=day)
    assert [d["night"] for d in all_decisions(str(tmp_path))] == list(range(12))
