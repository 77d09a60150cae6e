"""The nightly's promotion rule, decision files and config errors (no Ray, no MLflow)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobs.cli import main
from jobs.retraining.config import load_nightly
from jobs.retraining.decision import KEPT, PROMOTED, decide, new_decision_uri
from pipeline.errors import UserError

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "nightly.yaml")


def test_promotion_by_margin():
    assert decide(None, 0.9, 0.5)[0] == PROMOTED                   # the first champion
    assert decide(0.75, 0.5, 0.25)[0] == PROMOTED                  # gain 0.25 >= 0.25
    assert decide(0.75, 0.5625, 0.25)[0] == KEPT                   # gain 0.1875 < 0.25
    assert decide(0.30, 0.30, 0.0)[0] == PROMOTED                  # a tie at margin 0
    assert decide(0.30, 0.31, 0.0)[0] == KEPT                      # worse
    assert decide(0.30, 0.90, -1e9)[0] == PROMOTED and decide(0.3, 0.0, 1e9)[0] == KEPT


def test_decision_folders_by_date(tmp_path):
    day = datetime(2026, 11, 29, 2, 30, tzinfo=timezone.utc)
    first = new_decision_uri(str(tmp_path), day)
    assert first == f"{tmp_path}/2026-11-29/decision.json"
    Path(first).parent.mkdir()
    Path(first).write_text("{}")
    assert new_decision_uri(str(tmp_path), day) == f"{tmp_path}/2026-11-29_2/decision.json"


def test_shipped_config_loads():
    nightly = load_nightly(CONFIG)
    assert nightly.init == "champion" and nightly.promotion.alias == "champion"
    assert Path(nightly.base_config).is_file()


@pytest.mark.parametrize("overrides, words", [
    (["init=sideways"], "'init'"),
    (["promotion.margin=abc"], "'promotion.margin'"),
    (["promotion.challenger_alias=champion"], "two different"),
    (["config.data.test=null"], "test split"),
    (["config.train.max_steps=0"], "train.max_steps"),
    (["corpus.nonsense=1"], "corpus.nonsense"),
    (["promotion"], "key=value"),
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
