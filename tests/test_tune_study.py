"""`lact-audio tune` end to end on a real local Ray cluster and a real MLflow store: the smoke
study, interrupted (SIGUSR1, Tune's Ctrl+C) once a trial has finished, then resumed with its
finished trial kept; its summary, MLflow runs, report and registered `candidate`."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time

import pytest

pytestmark = pytest.mark.integration

SMOKE = os.path.join(os.path.dirname(__file__), "..", "configs", "tune", "smoke.yaml")
SPACE = ["search.space.update_rule=[momentum+muon]", "search.space.chunk_size=[16]"]


@pytest.fixture(scope="module")
def corpus(toy_corpus):
    return toy_corpus  # the session's tiny preprocessed corpus (tests/conftest.py)


def interrupt_when_a_trial_finishes(train_dir, seen: dict) -> threading.Thread:
    """Send Tune's interrupt signal to this process as soon as one trial's training run has
    written its summary; `seen` gets that run's checkpoint folders. (Waiting for the next trial's
    Train run to start instead, so that Tune has recorded the first as done, let the second
    trial's 4 steps finish before Tune acted on the signal in a CI run: the study ended whole.)"""
    def watch():
        deadline = time.time() + 600
        while time.time() < deadline:
            done = sorted(train_dir.glob("*/summary.json"))
            if done:
                run = done[0].parent
                seen[run.name] = sorted(p.name for p in run.glob("checkpoint_*"))
                os.kill(os.getpid(), signal.SIGUSR1)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def tune_home(tmp_path_factory):
    """The work directory of this module's study, with no MLflow URI set (its SQLite store)."""
    home = tmp_path_factory.mktemp("tune-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LACT_AUDIO_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield home


@pytest.fixture(scope="module")
def study(corpus, tune_home):
    from jobs.tuning.config import load_study

    # The smoke study cut to 2 trials for CI: one LaCT point and one ablation arm (with a second
    # chunk size the resumed study's two trials took up to 120 s). One trial at a time, so the
    # interrupt always lands with a trial left: with two at once, on a loaded machine the other
    # trial once finished before Tune acted on it (the study ran to its end). ASHA off: the
    # comparison with the reference arm needs both trials completed, and ASHA stopped one of them
    # at step 2 in a loaded CI run (summary["comparisons"] then empty); like every arm study.
    return load_study(SMOKE, [f"config.data.root={corpus}", *SPACE, "resources.max_concurrent_trials=1",
                              "search.reference=window", "scheduler.asha=false"])


@pytest.fixture(scope="module")
def interrupted(study, tune_home):
    """(interrupted summary, {finished train run: its checkpoints at the interrupt})."""
    from jobs.tuning.study import run_study

    seen: dict = {}
    watcher = interrupt_when_a_trial_finishes(tune_home / "tune" / "smoke" / "train", seen)
    first = run_study(study, echo=False)
    watcher.join(timeout=5)
    return first, seen


@pytest.fixture(scope="module")
def study_runs(interrupted, study, tune_home):
    """(interrupted summary, its finished runs' checkpoints, resumed summary, work directory)."""
    from jobs.tuning.study import run_study

    return (*interrupted, run_study(study, resume=True, echo=False), tune_home)


def test_an_interrupt_stops_the_study_once_a_trial_has_finished(interrupted):
    first, seen = interrupted
    assert first["interrupted"] is True and seen, "the study ended before any trial finished"
    assert "trials" not in first     # nothing is summarised until the study has run to its end


def test_interrupted_study_resumes_and_keeps_its_finished_trials(study_runs):
    first, seen, resumed, home = study_runs
    train = home / "tune" / "smoke" / "train"
    by_run = {f"train-trial_id={t['trial_id']}": t for t in resumed["trials"]}
    for run_name, checkpoints in seen.items():
        # not trained again: the resumed study only re-ran its finish step if Tune had not yet
        # recorded it (Train restores the final checkpoint and writes no new one)
        assert by_run[run_name]["status"] == "completed" and by_run[run_name]["steps"] == 4
        assert sorted(p.name for p in (train / run_name).glob("checkpoint_*")) == checkpoints
    # every trial was trained at most once to its end: one MLflow child run per trial
    import mlflow

    children = mlflow.search_runs(experiment_names=["lact-audio-tune-smoke"],
                                  filter_string=f"tags.mlflow.parentRunId = '{resumed['mlflow_run_id']}'")
    assert sorted(children["tags.tune_trial_id"]) == sorted(t["trial_id"] for t in resumed["trials"])


def key(point: dict) -> str:
    return json.dumps(point, sort_keys=True)


def test_study_summary_report_and_registered_best(study_runs):
    _, _, summary, home = study_runs
    import mlflow
    from mlflow.tracking import MlflowClient

    trials = summary["trials"]
    expected = [{"chunk_size": 16, "update_rule": "momentum+muon"}, {"arm": "window"}]
    assert summary["skipped"] == []
    assert sorted(map(key, (t["params"] for t in trials))) == sorted(map(key, expected))
    for t in trials:
        assert t["status"] in ("completed", "stopped"), t
        # 4 steps, evaluated at 2 and 4; ASHA can stop a trial only at its first evaluation
        assert t["steps"] == (4 if t["status"] == "completed" else 2) and t["seconds"] > 0
        assert 0.0 < t["metric"] <= 5.0
    completed = [t for t in trials if t["status"] == "completed"]
    best = min(completed, key=lambda t: t["metric"])
    assert summary["best"]["trial_id"] == best["trial_id"] and summary["best"]["metric"] == best["metric"]
    # the trial's metric is the best dev CER its MLflow child run logged
    history = MlflowClient().get_metric_history(best["mlflow_run_id"], "dev_cer")
    assert best["metric"] == pytest.approx(min(m.value for m in history))
    # registered: the candidate alias points at a version of the best trial's run
    name = f"lact-audio-asr-{best['params'].get('arm', 'lact')}"
    assert summary["best"]["model_uri"] == f"models:/{name}@candidate"
    version = MlflowClient().get_model_version_by_alias(name, "candidate")
    assert version.run_id == best["mlflow_run_id"]
    # LaCT trials log the fast-weight change of their one layer; the window-only arm has none
    for t in completed:
        logged = mlflow.get_run(t["mlflow_run_id"]).data.metrics
        assert ("fast_weight_change_layer0" in logged) == (t["params"].get("arm") != "window")
    # the report: one table row per trial, both plots, logged to the study's run too
    report = home / "tune" / "smoke" / "report"
    with open(report / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["trial_id"] for r in rows) == sorted(t["trial_id"] for t in trials)
    assert (report / "dev_vs_chunk_size.png").stat().st_size > 1000
    artifacts = {a.path for a in MlflowClient().list_artifacts(summary["mlflow_run_id"], "report")}
    assert {"report/table.csv", "report/table.md", "report/dev_vs_wall_time.png"} <= artifacts
    on_disk = json.loads((home / "tune" / "smoke" / "summary.json").read_text())
    assert on_disk["best"] == summary["best"]
    # the LaCT point against the reference arm, with a paired interval over the dev utterances
    # each trial's best checkpoint scored (dev_per_utterance.json beside its Train run)
    [row] = summary["comparisons"]
    assert row["arm"] == "lact" and row["reference"] == {"arm": "window"}
    by_arm = {p["arm"]: p["mean"] for p in summary["points"]}
    # the units are the dev metric split by utterance: their paired difference is the means'
    assert row["interval"]["difference"] == pytest.approx(by_arm["lact"] - by_arm["window"], abs=1e-9)
    assert row["interval"]["low"] <= row["interval"]["difference"] <= row["interval"]["high"]
    assert "reference" in (report / "points.md").read_text()


def test_starting_an_existing_study_again_asks_for_resume_or_a_new_name(study_runs, corpus,
                                                                        monkeypatch, capsys):
    from jobs.cli import main

    monkeypatch.setenv("LACT_AUDIO_HOME", str(study_runs[3]))
    assert main(["tune", "--config", SMOKE, f"config.data.root={corpus}", *SPACE]) == 2
    assert main(["tune", "--config", SMOKE, f"config.data.root={corpus}", *SPACE, "--name", "other",
                 "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "add --resume" in err[0] and "no study named 'other'" in err[1]
