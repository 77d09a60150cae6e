"""The memory study's configs (configs/tune/memory-study.yaml, memory-generation.yaml) and the glue
that evaluates a finished arms x seeds study (jobs/tuning/study_eval.py): which checkpoints it
picks, how it pools."""

import json
import os

import pytest

from jobs.tuning.config import load_study, points, trial_config
from jobs.tuning.study import settings
from jobs.tuning.study_eval import markdown, pool, pool_position_nll, position_markdown, study_models
from pipeline.errors import UserError

STUDY = os.path.join(os.path.dirname(__file__), "..", "configs", "tune", "memory-study.yaml")
GENERATION_STUDY = os.path.join(os.path.dirname(__file__), "..", "configs", "tune", "memory-generation.yaml")


def test_memory_study_is_four_matched_arms_by_three_seeds_on_sessions():
    study = load_study(STUDY)
    trials = points(study)
    assert len(trials) == 12
    got = {(settings(study, p)["arm"], settings(study, p)["seed"]) for p in trials}
    assert got == {(a, s) for a in ("lact", "static_fast_weights", "window", "full_attention") for s in (0, 1, 2)}
    assert study.search.reference == "window"
    for p in trials:
        cfg = trial_config(study, p)
        assert cfg.data.sessions.min_seconds == 10 and cfg.data.sessions.max_seconds == 20
        assert cfg.model.config.chunk_size == 96 and cfg.model.config.base_lr == 10.0
        assert cfg.train.max_steps == 800 and cfg.train.torch_threads == 1


def test_streaming_study_is_the_memory_study_block_causal_without_full_attention():
    """memory-streaming.yaml: the memory study's streamable arms, each at the same setting, with
    block-causal models; nothing else differs."""
    study = load_study(os.path.join(os.path.dirname(STUDY), "memory-streaming.yaml"))
    base = load_study(STUDY)
    trials = points(study)
    got = {(settings(study, p)["arm"], settings(study, p)["seed"]) for p in trials}
    assert got == {(a, s) for a in ("lact", "static_fast_weights", "window") for s in (0, 1, 2)}
    assert study.search.reference == "window"
    for p in trials:
        cfg, same = trial_config(study, p), trial_config(base, p)
        assert cfg.model.config.lact_causal is True and not same.model.config.get("lact_causal", False)
        cfg.model.config.lact_causal = None   # unset, as in the memory study
        for part in ("data", "model", "optim"):
            assert cfg[part] == same[part], part
        assert cfg.train.max_steps == same.train.max_steps == 800


def test_generation_study_trains_every_arm_on_the_same_long_session_crops():
    study = load_study(GENERATION_STUDY)
    trials = points(study)
    got = {(settings(study, p)["arm"], settings(study, p)["seed"]) for p in trials}
    assert got == {(a, s) for a in ("lact", "static_fast_weights", "window", "full_attention") for s in (0, 1, 2)}
    for p in trials:
        cfg = trial_config(study, p)      # validated: sessions are accepted for generation
        assert cfg.task == "generation" and cfg.data.max_audio_tokens == 8192
        assert (cfg.data.sessions.min_seconds, cfg.data.sessions.max_seconds) == (10, 20)
        assert cfg.model.config.window_size == 128 and cfg.model.config.chunk_size == 128


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)


def test_study_models_takes_each_completed_trials_best_checkpoint(tmp_path):
    trials = []
    for i, (arm, seed, status) in enumerate([("window", 0, "completed"), ("lact", 0, "completed"),
                                             ("lact", 1, "completed"), ("window", 1, "error")]):
        tid = f"t{i}"
        trials.append({"trial_id": tid, "status": status, "settings": {"arm": arm, "seed": seed}})
        if status == "completed":
            _write(str(tmp_path / "train" / f"train-trial_id={tid}" / "summary.json"),
                   {"best_checkpoint": f"/ckpt/{arm}-{seed}"})
    _write(str(tmp_path / "summary.json"), {"trials": trials, "reference": "window"})
    got = study_models(str(tmp_path))
    assert got == {0: {"lact": "/ckpt/lact-0", "window": "/ckpt/window-0"}, 1: {"lact": "/ckpt/lact-1"}}
    assert list(got[0]) == ["lact", "window"]          # arms in a fixed order
    trials.append({"trial_id": "t9", "status": "completed", "settings": {"arm": "lact", "seed": 0}})
    _write(str(tmp_path / "train" / "train-trial_id=t9" / "summary.json"), {"best_checkpoint": "/x"})
    _write(str(tmp_path / "summary.json"), {"trials": trials})
    with pytest.raises(UserError, match="two completed trials"):
        study_models(str(tmp_path))



def test_studies_of_different_seeds_pool_and_an_arm_seed_twice_is_refused(tmp_path):
    for name, seed in (("a", 0), ("b", 1)):
        trials = [{"trial_id": f"{name}{i}", "status": "completed", "settings": {"arm": arm, "seed": seed}}
                  for i, arm in enumerate(("window", "lact"))]
        for t in trials:
            _write(str(tmp_path / name / "train" / f"train-trial_id={t['trial_id']}" / "summary.json"),
                   {"best_checkpoint": f"/ckpt/{t['settings']['arm']}-{seed}"})
        _write(str(tmp_path / name / "summary.json"), {"trials": trials})
    got = study_models([str(tmp_path / "a"), str(tmp_path / "b")])
    assert got == {0: {"lact": "/ckpt/lact-0", "window": "/ckpt/window-0"},
                   1: {"lact": "/ckpt/lact-1", "window": "/ckpt/window-1"}}
    assert list(got[1]) == ["lact", "window"]
    with pytest.raises(UserError, match="in two of the studies"):
        study_models([str(tmp_path / "a"), str(tmp_path / "a")])


def _model(errors):
    """A model's metrics with one long-form recording per (length, one-pass, segmented errors)."""
    rows = [{"id": f"r{i}", "length": length, "status": "ok", "char_errors": one, "char_total": 100,
             "target_seconds": None if length == "longest" else float(length.rstrip("s")),
             "segmented": {"char_errors": seg}} for i, (length, one, seg) in enumerate(errors)]
    return {"long_form": {"recordings": rows}, "adaptation": {"one_pass_sessions": {"status": "ok", "sessions": rows}}}


def test_pool_sums_each_unit_over_seeds_and_pairs_with_the_reference():
    lact = [("longest", 10, 20), ("300s", 12, 20), ("30s", 8, 20)]
    window = [("longest", 20, 20), ("300s", 22, 20), ("30s", 18, 20)]
    per_seed = {0: {"lact": _model(lact), "window": _model(window)},
                1: {"lact": _model(lact), "window": _model(window)}}
    out = pool(per_seed, "window", "long_form", resamples=200)
    assert list(out) == ["30s", "300s", "longest", "all"]      # by length, not as strings sort
    e = out["all"]["lact"]
    assert e["one_pass_cer"] == pytest.approx(30 / 300) and e["segmented_cer"] == pytest.approx(60 / 300)
    assert e["context_gain"]["difference"] == pytest.approx(0.1)          # segmented - one pass
    assert e["vs_reference"]["difference"] == pytest.approx(-0.1)
    assert e["vs_reference"]["seeds_lower"] == 2
    assert out["all"]["window"]["context_gain"]["difference"] == pytest.approx(0.0)
    assert "vs_reference" not in out["all"]["window"]
    sessions = pool(per_seed, "window", "one_pass_sessions", resamples=200)
    assert set(sessions) == {"all"} and sessions["all"]["lact"]["units"] == 3
    assert pool(per_seed, "window", "streamed_sessions") == {}
    text = markdown({"long_form": out, "streamed_sessions": {}}, "window", [0, 1])
    assert "| all | lact | 3 |" in text and "nothing measured" in text


def _nll(per_sequence):
    """A generator's NLL-by-position result: sequences {id: {bin: (bits, tokens)}}."""
    return {"edges": [0, 4, 8], "sequences": [
        {"id": i, "status": "ok", "bins": {b: {"bits": x, "tokens": n} for b, (x, n) in bins.items()}}
        for i, bins in per_sequence.items()]}


def test_position_nll_pools_each_sequence_over_seeds_and_pairs_every_arm():
    lact = _nll({"a": {"0-4": (3.0, 3), "4-8": (4.0, 4)}, "b": {"0-4": (6.0, 3), "4-8": (8.0, 4)}})
    window = _nll({"a": {"0-4": (3.0, 3), "4-8": (8.0, 4)}, "b": {"0-4": (6.0, 3), "4-8": (12.0, 4)},
                   "c": {"0-4": (1.0, 3)}})                      # c: only the window arm scored it
    per_seed = {0: {"window": window, "lact": lact}, 1: {"window": window, "lact": lact}}
    out = pool_position_nll(per_seed, resamples=200)
    assert list(out) == ["0-4", "4-8"]
    assert out["0-4"]["arms"]["lact"]["sequences"] == 2           # c is not common to both arms
    assert out["4-8"]["arms"]["lact"]["nll_bits"] == pytest.approx(24 / 16)
    assert out["4-8"]["arms"]["window"]["nll_bits"] == pytest.approx(40 / 16)
    pair = out["4-8"]["pairs"]["lact - window"]
    assert pair["difference"] == pytest.approx(-1.0) and pair["seeds_lower"] == 2
    assert out["0-4"]["pairs"]["lact - window"]["difference"] == pytest.approx(0.0)
    assert out["0-4"]["pairs"]["lact - window"]["seeds_lower"] == 0
    text = position_markdown(out, [0, 1])
    assert "| 4-8 | lact | 2 | 1.5000 |" in text and "| 4-8 | lact - window | -1.0000" in text


def test_evaluate_study_is_a_command_whose_mistakes_are_one_line_errors(tmp_path, capsys):
    from jobs.cli import main

    assert main(["evaluate", "--study", str(tmp_path / "none"), "--data", str(tmp_path)]) == 2
    assert "no summary.json" in capsys.readouterr().err
    _write(str(tmp_path / "s" / "summary.json"), {"trials": [
        {"trial_id": "t0", "status": "error", "settings": {"arm": "lact", "seed": 0}}]})
    assert main(["evaluate", "--study", str(tmp_path / "s"), "--data", str(tmp_path)]) == 2
    assert "no completed trial" in capsys.readouterr().err
    with pytest.raises(SystemExit):        # a model and a study: argparse refuses
        main(["evaluate", "--study", "a", "--model", "b", "--data", "c"])
