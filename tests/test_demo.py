"""`lact-audio demo` end to end at toy size (real espeak-ng, Ray, Ray Train, MLflow): the
summary it writes holds what the README promises, and its model URI evaluates."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def test_demo_writes_summary_with_both_models_and_generators(tmp_path, monkeypatch, ray_cluster, capsys):
    from jobs.cli import main

    monkeypatch.setenv("LACT_AUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["demo", "--hours", "0.02", "--max-steps", "3"]) == 0
    summary = json.loads((tmp_path / "home" / "demo" / "summary.json").read_text())
    for arch in ("lact", "baseline"):
        model = summary["models"][arch]
        assert {"cer", "wer", "params", "train_seconds", "throughput", "model_uri"} <= set(model)
        assert model["steps"] == 3 and 0.0 <= model["cer"]
        assert summary["generation"][arch]["nll_bits"] > 0
    lact, baseline = summary["models"]["lact"], summary["models"]["baseline"]
    assert abs(lact["params"] - baseline["params"]) / baseline["params"] < 0.05
    assert set(summary["stage_seconds"]) >= {"synthesis", "preprocessing", "asr_lact", "asr_baseline"}
    out = capsys.readouterr().out
    assert "ASR on held-out voices" in out and "MLflow UI" in out

    report = tmp_path / "report"
    assert main(["evaluate", "--model", lact["model_uri"], "--data", summary["test_split"],
                 "--report", str(report)]) == 0
    assert json.loads((report / "metrics.json").read_text())["cer"] == pytest.approx(lact["cer"])


def test_demo_rejects_a_bad_budget(tmp_path, monkeypatch, capsys):
    from jobs.cli import main

    monkeypatch.setenv("LACT_AUDIO_HOME", str(tmp_path / "home"))
    assert main(["demo", "--budget-minutes", "0"]) == 2
    assert "--budget-minutes" in capsys.readouterr().err
