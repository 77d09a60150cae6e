"""`lact-audio tune` study configs without Ray: a bad search space is a one-line error naming
its key; grid and random points; a point's training overrides; the shipped study configs load."""

from __future__ import annotations

import os

import pytest

from jobs.tuning.config import load_study, points, skipped_points, trial_config
from jobs.tuning.space import overrides, trial_points
from pipeline.errors import UserError

TUNE = os.path.join(os.path.dirname(__file__), "..", "configs", "tune")
SMOKE = os.path.join(TUNE, "smoke.yaml")


@pytest.mark.parametrize("override, key", [
    ("search.space.chunk_sizes=[16]", "search.space.chunk_sizes"),          # unknown parameter
    ("search.space.chunk_size=[]", "search.space.chunk_size"),              # empty choice list
    ("search.space.chunk_size=[big]", "search.space.chunk_size"),           # wrong type
    ("search.space.base_lr=[true]", "search.space.base_lr"),
    ("search.space.window_size=[1.5]", "search.space.window_size"),
    ("search.space.update_rule=[adam]", "search.space.update_rule"),
    ("search.space.chunk_size=16", "search.space.chunk_size"),              # not a list
    ("search.space.base_lr={min:0.001,max:0.1}", "search.space.base_lr"),   # a range in a grid
    ("search.arms=[no_mlp]", "search.arms"),
    ("search.arms=[window_only]", "search.arms"),                           # a Tune-only arm of before
    ("search.seeds=[0,0]", "search.seeds"),
    ("search.seeds=[-1]", "search.seeds"),
    ("search.reference=baseline_mlp", "search.reference"),
    ("search.method=bayes", "search.method"),
    ("search.bogus=1", "search.bogus"),
    ("scheduler.grace_period=2", "scheduler.grace_period"),                 # no rung left for ASHA
    ("search.space.num_lact_heads=[3]", "num_lact_heads"),                  # 3 does not divide 32
    ("config.train.max_stepz=3", "train.max_stepz"),
])
def test_bad_search_space_is_one_line_error_naming_the_key(override, key):
    with pytest.raises(UserError) as err:
        load_study(SMOKE, [override])
    assert key in str(err.value) and "\n" not in str(err.value)


def test_bad_study_is_exit_2_with_one_line_on_stderr(capsys):
    from jobs.cli import main

    assert main(["tune", "--config", SMOKE, "search.space.chunk_size=[]"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "search.space.chunk_size: empty choice list" in err


def test_grid_is_every_combination_plus_one_trial_per_arm():
    study = load_study(SMOKE)
    got = points(study)
    assert got == [{"chunk_size": 16, "update_rule": "plain"},
                   {"chunk_size": 16, "update_rule": "momentum+muon"},
                   {"chunk_size": 2048, "update_rule": "plain"},
                   {"chunk_size": 2048, "update_rule": "momentum+muon"},
                   {"arm": "window"}]
    assert skipped_points(study) == []


def arms_study(tmp_path, arms: str, empty_space: bool = False) -> str:
    """The smoke study with `search.arms` given as a mapping (a YAML file: an override cannot
    turn the smoke study's list into a mapping)."""
    text = open(SMOKE).read().replace("base_config: ../demo-asr.yaml",
                                      f"base_config: {os.path.join(TUNE, '..', 'demo-asr.yaml')}")
    text = "\n".join(f"  arms: {arms}" if line.startswith("  arms:") else line for line in text.splitlines())
    if empty_space:
        text = text.replace("  space:\n    chunk_size: [16, 2048]\n    update_rule: [plain, momentum+muon]\n",
                            "  space: {}\n")
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("arms, key", [("{window: {chunk: 3}}", "search.arms.window.chunk"),
                                       ("{window: {lr: -1}}", "search.arms.window.lr"),
                                       ("{windowed: {}}", "search.arms"),
                                       ("{window: 3}", "search.arms.window")])
def test_bad_arm_values_are_one_line_errors_naming_the_key(tmp_path, arms, key):
    with pytest.raises(UserError) as err:
        load_study(arms_study(tmp_path, arms))
    assert key in str(err.value) and "\n" not in str(err.value)


def test_points_drop_what_their_arm_does_not_use_and_repeat_over_seeds(tmp_path):
    space = {"arm": ["lact", "window", "full_attention"], "window_size": [4, 8], "chunk_size": [16]}
    got = trial_points(space, "grid", 1, 0, {"static_fast_weights": {"window_size": 8, "lr": 0.002}})
    assert got == [{"arm": "lact", "window_size": 4, "chunk_size": 16},
                   {"arm": "lact", "window_size": 8, "chunk_size": 16},
                   {"arm": "window", "window_size": 4}, {"arm": "window", "window_size": 8},
                   {"arm": "full_attention"},        # its two grid points train the same model
                   {"window_size": 8, "lr": 0.002, "arm": "static_fast_weights"}]
    seeded = trial_points({}, "grid", 1, 0, ["lact", "full_attention"], seeds=[0, 1, 2])
    assert seeded == [{"arm": a, "seed": s} for a in ("lact", "full_attention") for s in (0, 1, 2)]
    study = load_study(arms_study(tmp_path, "{window: {lr: 0.01}}", empty_space=True), ["search.seeds=[3,4]"])
    assert points(study) == [{"lr": 0.01, "arm": "window", "seed": 3}, {"lr": 0.01, "arm": "window", "seed": 4}]
    cfg = trial_config(study, points(study)[1])
    assert (cfg.model.architecture, cfg.optim.lr, cfg.train.seed) == ("window", 0.01, 4)


def test_a_point_the_model_rejects_is_skipped_with_its_reason():
    # Muon needs chunks of at least twice the LaCT head dim (32 / 2 heads = 16): that point is
    # skipped with the model's reason, the other rules at the same chunk size run
    study = load_study(SMOKE, ["config.model.config.num_lact_heads=2"])
    assert {"chunk_size": 16, "update_rule": "plain"} in points(study)
    [(point, reason)] = skipped_points(study)
    assert point == {"chunk_size": 16, "update_rule": "momentum+muon"} and "use_muon" in reason


def test_a_space_the_model_never_accepts_is_a_one_line_error():
    with pytest.raises(UserError, match="search.space: no point the model accepts.*use_muon"):
        load_study(SMOKE, ["search.space.update_rule=[muon]", "search.space.chunk_size=[8]"])


def test_random_points_are_seeded_draws_inside_the_ranges():
    space = {"base_lr": {"min": 1e-3, "max": 1e-1, "log": True}, "chunk_size": [16, 64, 256]}
    first = trial_points(space, "random", 20, 7, [])
    assert first == trial_points(space, "random", 20, 7, [])          # a restore sees the same
    assert first != trial_points(space, "random", 20, 8, [])
    assert all(1e-3 <= p["base_lr"] <= 1e-1 and p["chunk_size"] in (16, 64, 256) for p in first)
    assert len({p["chunk_size"] for p in first}) == 3


def test_a_point_becomes_the_trial_training_config():
    assert overrides({"update_rule": "muon", "arm": "full_attention", "base_lr": 0.05, "seed": 2}) == {
        "model.config.use_momentum": False, "model.config.use_muon": True,
        "model.architecture": "full_attention", "model.config.base_lr": 0.05, "train.seed": 2}
    study = load_study(SMOKE, ["config.data.root=/data/features"], name="renamed")
    cfg = trial_config(study, {"chunk_size": 32, "update_rule": "momentum+muon"})
    assert (cfg.name, cfg.data.root, cfg.train.max_steps) == ("renamed", "/data/features", 4)
    assert (cfg.model.config.chunk_size, cfg.model.config.use_momentum, cfg.model.config.use_muon) \
        == (32, True, True)
    arm = trial_config(study, {"arm": "window"})
    assert arm.model.architecture == "window" and arm.model.config.chunk_size == 2048


def test_default_data_root_moves_with_the_work_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("LACT_AUDIO_HOME", str(tmp_path))
    cfg = trial_config(load_study(SMOKE), {"chunk_size": 16})
    assert cfg.data.root == str(tmp_path / "demo" / "features")


@pytest.mark.parametrize("name, trials", [("smoke", 5), ("demo-ablation", 15), ("librispeech-960h", 19),
                                           ("memory-base-lr", 5), ("memory-chunk-window", 6),
                                           ("memory-generation", 12)])
def test_shipped_study_configs_load(name, trials):
    study = load_study(os.path.join(TUNE, f"{name}.yaml"))
    assert len(points(study)) == trials
    arms = {p.get("arm", "lact") for p in points(study)}
    assert "lact" in arms and (name in ("smoke", "memory-base-lr", "memory-chunk-window") or "full_attention" in arms)
    if name == "memory-base-lr":    # LaCT's step size swept, everything else the memory study's
        assert sorted(trial_config(study, p).model.config.base_lr for p in points(study)) == [1, 3, 10, 30, 100]
        assert trial_config(study, points(study)[0]).data.sessions.max_seconds == 20
    if name == "memory-chunk-window":   # LaCT's chunk x window, at the memory study's base_lr
        models = [trial_config(study, p).model.config for p in points(study)]
        assert sorted((m.chunk_size, m.window_size) for m in models) == [
            (c, w) for c in (48, 96, 192) for w in (4, 16)]
        assert {m.base_lr for m in models} == {10}
