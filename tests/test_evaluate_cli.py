"""`lact-audio evaluate` end to end on a tiny split and tiny untrained checkpoints: the side-by-side
full-suite report with its plots, metrics.json keys, the quick suite with MLflow logging, the
generator suites, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
import torch

from eval_split import one_torch_thread, write_checkpoint, write_split  # noqa: F401 (autouse)
from jobs.cli import main

SMALL = ["--long-form-seconds", "2,5,1000,max", "--session-seconds", "2,4", "--stream-seconds", "15",
         "--stream-chunk-frames", "50", "--efficiency-seconds", "1,3", "--efficiency-tokens", "256,512",
         "--nll-position-bins", "0,64,256", "--nll-sequences", "4",
         "--samples", "1", "--prompt-seconds", "0.02", "--continuation-seconds", "0.02",
         "--time-limit", "300", "--beam-size", "4"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    split = write_split(str(root))
    vocab = len(json.loads((root / "features" / "test-clean" / "manifest.json").read_text())
                ["text_tokenizer"]["symbols"]) + 1
    ckpts = {name: write_checkpoint(str(root / name), task, arch, vocab, causal)
             for name, task, arch, causal in [("asr-lact", "asr", "lact", False),
                                              ("asr-baseline", "asr", "baseline", False),
                                              ("asr-window", "asr", "window", False),
                                              ("asr-static", "asr", "static_fast_weights", False),
                                              ("asr-causal", "asr", "lact", True),
                                              ("gen-lact", "generation", "lact", False),
                                              ("gen-baseline", "generation", "baseline", False)]}
    return root, split, ckpts


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_full_suite_reports_models_side_by_side_with_plots(workspace, capsys):
    root, split, ckpts = workspace
    report = root / "report-full"
    args = ["evaluate", "--model", ckpts["asr-lact"], "--model", ckpts["asr-baseline"],
            "--model", ckpts["asr-causal"], "--data", split, "--report", str(report), "--suite", "full",
            "--chained-state", "always"]   # the untrained checkpoints have no training run file
    assert main(args + SMALL) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["models"]) == {"lact", "baseline", "lact-causal"}
    for label, m in metrics["models"].items():
        assert {"cer", "wer", "per_speaker", "per_language", "beam", "long_form", "streaming",
                "adaptation", "fast_weight_ablation", "quantized", "efficiency", "not_measured"} <= set(m)
        lengths = m["long_form"]["lengths"]
        assert [x["length"] for x in lengths] == ["2s", "5s", "1000s", "longest"]
        assert [x["recordings"] for x in lengths] == [x["recordings"] for x in metrics["long_form_sets"]]
        assert lengths[2]["recordings"] == 0 and "0 recordings, not the 30 asked for" in lengths[2]["notes"][0]
        assert lengths[3]["recordings"] == 3 and "3 speakers, fewer than the 10" in lengths[3]["notes"][-1]
        assert all(r["status"] == "ok" and "segmented" in r for r in m["long_form"]["recordings"])
        assert m["long_form"]["context_gain"]["status"] == "ok"
        assert m["adaptation"]["one_pass_sessions"]["decoded"] == m["adaptation"]["one_pass_sessions"]["recordings"]
        assert m["adaptation"]["training"]["condition"] == "unknown"
        assert set(m["not_measured"]) == {"mos", "energy"}
        assert m["quantized"]["int8_dynamic"]["cer"] is not None
    # every model decodes the same recordings
    ids = {tuple(r["id"] for r in m["long_form"]["recordings"]) for m in metrics["models"].values()}
    assert len(ids) == 1
    recordings = len(next(iter(ids)))
    models = metrics["models"]
    assert models["baseline"]["adaptation"]["chained"]["status"] == "not_applicable"
    assert models["lact"]["adaptation"]["chained"]["status"] == "ok"
    assert models["lact"]["adaptation"]["streamed_sessions"]["status"] == "not_applicable"
    assert models["lact-causal"]["adaptation"]["streamed_sessions"]["mode"] == "streamed"
    assert models["lact-causal"]["long_form"]["mode"] == "streamed"
    assert models["lact"]["streaming"]["status"] == "not_applicable"
    assert models["lact-causal"]["streaming"]["streaming_cer"] == pytest.approx(
        models["lact-causal"]["streaming"]["offline_cer"])
    assert models["lact"]["fast_weight_ablation"]["status"] == "ok"
    assert 0.0 < models["lact"]["fast_weight_ablation"]["fast_weight_change"] < 2.0

    text = (report / "report.md").read_text()
    plots = ["cer_vs_duration.png", "cer_vs_adaptation.png", "memory_over_stream.png",
             "latency_vs_length.png", "memory_vs_length.png", "flops_vs_length.png"]
    for name in plots:
        assert f"]({name})" in text and _is_png(report / name), name
    for heading in ("Long-form", "Streaming", "adaptation", "ablation", "Quantised", "Efficiency", "Not measured"):
        assert heading in text
    # the long-form tables: what each length holds, and each model's context gain with its interval
    assert "| length | recordings | speakers | chapters | seconds min / median / max | counts |" in text
    assert "| 1000s | 0 | 0 | 0 | - | 0 recordings, not the 30 asked for" in text
    assert "| length | model | one pass | CER one pass | CER segmented | context gain [95 % interval] |" in text
    gain = models["lact"]["long_form"]["lengths"][0]["context_gain"]
    assert f"{gain['difference']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}]" in text
    assert "| model | trained on | sessions | CER one pass | CER segmented |" in text
    # every pair of the three models: short-form and long-form differences with intervals
    pairs = {(p["a"], p["b"]): p["metrics"] for p in metrics["comparisons"]}
    assert set(pairs) == {("lact", "baseline"), ("lact", "lact-causal"), ("baseline", "lact-causal")}
    for m in pairs.values():
        assert set(m) == {"cer", "wer", "long_form_cer", "long_form_wer", "long_form_cer_2s", "long_form_cer_5s",
                          "long_form_cer_longest", "long_form_context_gain", "session_cer", "session_context_gain"}
        assert m["cer"]["units"] == 17 and m["long_form_cer"]["units"] == recordings
        assert m["session_cer"]["units"] == models["lact"]["adaptation"]["one_pass_sessions"]["recordings"]
        assert m["cer"]["low"] <= m["cer"]["difference"] <= m["cer"]["high"]
    assert "## Paired comparisons" in text
    out = capsys.readouterr().out
    assert f"report {report / 'report.md'}" in out


@pytest.mark.integration    # a real MLflow store
def test_quick_suite_keeps_one_models_metrics_at_the_top_and_logs_to_mlflow(workspace, monkeypatch):
    root, split, ckpts = workspace
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.setenv("LACT_AUDIO_HOME", str(root / "home"))
    report = root / "report-quick"
    assert main(["evaluate", "--model", ckpts["asr-lact"], "--data", split, "--report", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["suite"] == "quick" and "long_form" not in metrics
    assert metrics["cer"] == metrics["models"]["lact"]["cer"]
    assert sum(s["utterances"] for s in metrics["per_speaker"].values()) == metrics["utterances"] == 17

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["lact-audio-evaluation"])
    assert len(runs) == 1
    assert runs.iloc[0]["metrics.lact.cer"] == pytest.approx(metrics["cer"])


def test_several_arms_get_paired_intervals_from_their_per_utterance_errors(workspace, capsys):
    from jobs.evaluation.paired_bootstrap import paired_bootstrap

    root, split, ckpts = workspace
    report = root / "report-arms"
    args = ["evaluate", "--data", split, "--report", str(report), "--bootstrap-seed", "3"]
    for name in ("asr-lact", "asr-window", "asr-static", "asr-lact"):
        args += ["--model", ckpts[name]]
    assert main(args) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    models = metrics["models"]
    assert list(models) == ["lact-1", "window", "static_fast_weights", "lact-4"]
    assert models["window"]["architecture"] == "window"
    rows = {label: models[label]["per_utterance"] for label in models}
    assert all(len(r) == 17 for r in rows.values())
    # per-utterance counts add up to the overall figures
    for label, m in models.items():
        assert sum(r["char_errors"] for r in rows[label]) / sum(r["char_total"] for r in rows[label]) \
            == pytest.approx(m["cer"])
    pairs = {(p["a"], p["b"]): p["metrics"] for p in metrics["comparisons"]}
    assert len(pairs) == 6
    # the interval is the paired bootstrap of the two models' per-utterance errors, seeded
    a, b = rows["lact-1"], rows["window"]
    expected = paired_bootstrap([r["char_errors"] for r in a], [r["char_errors"] for r in b],
                                [r["char_total"] for r in a], seed=3)
    got = pairs[("lact-1", "window")]["cer"]
    assert {k: got[k] for k in expected} == expected
    # a model against itself: no difference
    same = pairs[("lact-1", "lact-4")]["cer"]
    assert same["difference"] == same["low"] == same["high"] == 0 and not same["significant"]
    out = capsys.readouterr().out
    assert "cer: lact-1 - window = " in out and "no difference shown (17 utterances)" in out
    assert "## Paired comparisons" in (report / "report.md").read_text()


def test_generator_suites_write_nll_curve_scores_and_samples(workspace):
    root, split, ckpts = workspace
    report = root / "report-gen"
    args = ["evaluate", "--model", ckpts["gen-lact"], "--model", ckpts["gen-baseline"], "--data", split,
            "--report", str(report), "--suite", "full"]
    assert main(args + SMALL) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    for label in ("lact", "baseline"):
        m = metrics["models"][label]
        by_position = m["nll_by_position"]
        assert by_position["status"] == "ok" and [b["label"] for b in by_position["bins"]] == ["0-64", "64-256"]
        assert len(by_position["sequences"]) == 4 and by_position["speakers"] == 3
        assert all(set(s["bins"]) == {"0-64", "64-256"} for s in by_position["sequences"])
        assert 1.0 <= m["pesq"] <= 4.65 and 0.0 < m["stoi"] <= 1.0
        sample = m["continuations"][0]
        assert (report / sample["wav"]).stat().st_size > 44 and _is_png(report / sample["png"])
        assert [e["tokens"] for e in m["efficiency"]] == [256, 512]
    nll = metrics["comparisons"][0]["metrics"]["nll_bits"]
    assert nll["difference"] == pytest.approx(metrics["models"]["lact"]["nll_bits"]
                                              - metrics["models"]["baseline"]["nll_bits"])
    per_bin = metrics["comparisons"][0]["metrics"]["nll_bits_64-256"]
    assert per_bin["units"] == 4 and per_bin["unit"] == "sequence" and per_bin["low"] <= per_bin["high"]
    text = (report / "report.md").read_text()
    assert "### NLL (bits/token) by position on long single-speaker sequences" in text
    assert "| positions | lact | baseline |" in text
    assert _is_png(report / "nll_by_position.png")


FULL_ONLY = {"beam", "streaming", "adaptation", "fast_weight_ablation", "quantized", "efficiency",
             "not_measured", "continuations", "pesq", "stoi"}


def test_long_form_suite_measures_long_context_only(workspace):
    """--suite long-form: the full suite's long-form recordings (ASR) and NLL by position
    (generators), on the same recordings for every model, and none of its other suites."""
    root, split, ckpts = workspace
    report = root / "report-long-form"
    args = ["evaluate", "--model", ckpts["asr-lact"], "--model", ckpts["asr-window"], "--data", split,
            "--report", str(report), "--suite", "long-form"]
    assert main(args + SMALL) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["suite"] == "long-form"
    for m in metrics["models"].values():
        assert not FULL_ONLY & set(m) and "cer" in m
        assert [x["length"] for x in m["long_form"]["lengths"]] == ["2s", "5s", "1000s", "longest"]
        assert all(r["status"] == "ok" and "segmented" in r for r in m["long_form"]["recordings"])
    assert len({tuple(r["id"] for r in m["long_form"]["recordings"]) for m in metrics["models"].values()}) == 1
    pairs = {(p["a"], p["b"]): p["metrics"] for p in metrics["comparisons"]}
    assert "long_form_cer" in pairs[("lact", "window")] and "session_cer" not in pairs[("lact", "window")]
    assert "Long-form" in (report / "report.md").read_text()

    report = root / "report-long-form-gen"
    assert main(["evaluate", "--model", ckpts["gen-lact"], "--data", split, "--report", str(report),
                 "--suite", "long-form"] + SMALL) == 0
    m = json.loads((report / "metrics.json").read_text())["models"]["lact"]
    assert m["nll_by_position"]["status"] == "ok" and not FULL_ONLY & set(m)


@pytest.mark.parametrize("extra,message", [
    (["--suite", "medium"], "--suite must be quick, long-form or full"),
    (["--long-form-seconds", "60,abc"], "--long-form-seconds expects comma-separated numbers"),
    (["--time-limit", "0"], "--time-limit must be > 0"),
    (["--adaptation-counts", "-1"], "--adaptation-counts needs values >= 0"),
    (["--nll-position-bins", "0,512,256"], "--nll-position-bins needs increasing edges from 0"),
    (["--chained-state", "sometimes"], "--chained-state must be one of trained, always, never"),
    (["--session-seconds", "40,10"], "--session-seconds needs MIN,MAX with 0 < MIN <= MAX"),
    (["--long-form-recordings", "0"], "--long-form-recordings must be > 0"),
])
def test_bad_flags_exit_2_with_one_line(workspace, capsys, extra, message):
    root, split, ckpts = workspace
    assert main(["evaluate", "--model", ckpts["asr-lact"], "--data", split,
                 "--report", str(root / "bad")] + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_missing_data_or_model_exit_2_with_one_line(workspace, capsys):
    root, split, ckpts = workspace
    assert main(["evaluate", "--model", ckpts["asr-lact"], "--data", str(root / "nope"),
                 "--report", str(root / "bad")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["evaluate", "--model", str(root), "--data", split, "--report", str(root / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a lact-audio checkpoint" in err[0]


@pytest.mark.integration    # a real S3 API server (moto)
def test_report_directory_on_s3(workspace, s3_bucket):
    import fsspec

    root, split, ckpts = workspace
    report = f"{s3_bucket}/eval/quick"
    assert main(["evaluate", "--model", ckpts["asr-baseline"], "--data", split, "--report", report]) == 0
    fs = fsspec.filesystem("s3")
    names = {p.rsplit("/", 1)[-1] for p in fs.ls(report.removeprefix("s3://"))}
    assert {"metrics.json", "report.md"} <= names
    metrics = json.loads(fs.cat(f"{report.removeprefix('s3://')}/metrics.json"))
    assert metrics["report"] == f"{report}/report.md" and metrics["utterances"] == 17


def test_flag_defaults_are_the_suite_config_defaults():
    # one place for the defaults: the flags (read without torch for --help) must give SuiteConfig()
    from jobs.cli import build_parser
    from jobs.commands.evaluate import config_from_args
    from jobs.evaluation.suite import SuiteConfig

    args = build_parser().parse_args(["evaluate", "--model", "m", "--data", "d"])
    assert config_from_args(args) == SuiteConfig()
