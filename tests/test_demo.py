"""`lact-audio demo` end to end at toy size (real espeak-ng, Ray, Ray Train, MLflow): the
summary it writes holds what the README promises, and its model URI evaluates."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, ray_cluster):
    """One demo at toy size (three Ray Train runs, ~2 min on 2 cores), shared by the tests below:
    3 steps a model, and a half-minute budget that the three ASR runs use up, so the generator
    stage is skipped with its reason. (The generator config itself trains in
    tests/test_train_integration.py; both stages share demo.train_arms.)"""
    import contextlib
    import io

    from jobs.cli import main

    home = tmp_path_factory.mktemp("demo") / "home"
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LACT_AUDIO_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        with contextlib.redirect_stdout(out):
            status = main(["demo", "--hours", "0.02", "--max-steps", "3", "--budget-minutes", "0.5"])
        yield status, home, out.getvalue()


def test_demo_writes_summary_with_three_models_and_skips_generators_past_budget(demo_run):
    status, home, out = demo_run
    assert status == 0
    summary = json.loads((home / "demo" / "summary.json").read_text())
    test_utterances = json.loads((home / "demo" / "features" / "test-clean" /
                                  "manifest.json").read_text())["num_utterances"]
    assert summary["data"]["utterances"] >= 20 and test_utterances >= 2
    assert list(summary["models"]) == ["lact", "window", "full_attention"]
    for arch in summary["models"]:
        model = summary["models"][arch]
        assert {"cer", "wer", "params", "train_seconds", "throughput", "model_uri"} <= set(model)
        assert model["steps"] == 3
        assert 0.0 < model["cer"] < 10.0 and 0.0 < model["wer"]  # 3 steps cannot be perfect
    lact, baseline = summary["models"]["lact"], summary["models"]["full_attention"]
    for other in ("window", "full_attention"):     # matched arms
        assert abs(summary["models"][other]["params"] - lact["params"]) / lact["params"] < 0.02
    # the LaCT model also scored with every test-time update skipped; the other arms have none
    assert 0.0 < lact["cer_without_updates"] < 10.0 and 0.0 < lact["fast_weight_change"] < 2.0
    assert "cer_without_updates" not in baseline and "cer_without_updates" not in summary["models"]["window"]
    assert "budget left" in summary["generation"]["skipped"]
    assert list(summary["stage_seconds"]) == ["synthesis", "preprocessing", "asr_lact", "asr_window",
                                              "asr_full_attention", "evaluation"]
    # every pair of the three, with paired intervals on the test utterances
    pairs = [(c["a"], c["b"]) for c in summary["comparisons"]]
    assert pairs == [("lact", "window"), ("lact", "full_attention"), ("window", "full_attention")]
    cer = summary["comparisons"][0]["metrics"]["cer"]
    assert cer["units"] == test_utterances and cer["low"] <= cer["difference"] <= cer["high"]
    assert cer["difference"] == pytest.approx(lact["cer"] - summary["models"]["window"]["cer"])
    assert "ASR on held-out voices" in out and "MLflow UI" in out and "CER no TTT" in out
    assert "generator runs skipped" in out and "Paired differences" in out


def test_demo_ends_with_the_full_suite_and_its_model_uri_evaluates(demo_run, tmp_path):
    from jobs.cli import main

    status, home, out = demo_run
    summary = json.loads((home / "demo" / "summary.json").read_text())
    lact = summary["models"]["lact"]
    test_utterances = json.loads((home / "demo" / "features" / "test-clean" /
                                  "manifest.json").read_text())["num_utterances"]
    # the demo ends with the full evaluation suite of the three models, and names its report
    full = json.loads((home / "demo" / "eval" / "metrics.json").read_text())
    assert set(full["models"]) == {"lact", "window", "full_attention"} and full["suite"] == "full"
    assert full["models"]["lact"]["cer"] == pytest.approx(lact["cer"])
    assert f"full report     {summary['evaluation']['report']}" in out

    report = tmp_path / "report"
    assert main(["evaluate", "--model", lact["model_uri"], "--data", summary["test_split"],
                 "--report", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["cer"] == pytest.approx(lact["cer"]) and metrics["utterances"] == test_utterances


@pytest.mark.parametrize("flags, named", [(["--budget-minutes", "0"], "--budget-minutes"),
                                           (["--max-steps", "0"], "--max-steps"),
                                           (["--max-steps", "-3"], "--max-steps")])
def test_demo_rejects_bad_flags_before_any_work(tmp_path, monkeypatch, capsys, flags, named):
    from jobs.cli import main

    monkeypatch.setenv("LACT_AUDIO_HOME", str(tmp_path / "home"))
    assert main(["demo", *flags]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "home" / "demo").exists()   # nothing synthesised first
