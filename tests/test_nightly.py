"""`lact-audio nightly` end to end on a real local Ray cluster and a real MLflow SQLite registry:
the first night makes the first champion and freezes the test split, a night without new data does
nothing, new utterances in the corpus give a challenger (found by its training run) that is kept or
promoted by the margin + interval rule, rollback swaps champion and previous-champion, a failing
step (a bad config; new data whose vocabulary the champion cannot take, found before training or,
from scratch, after the challenger is registered) leaves the champion alone and is recorded, the
same failure twice is flagged (decision.json, `nightly status`), and a changed test split or a
test speaker in the training data stops the night before training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from jobs.cli import main
from pipeline.manifest import read_manifest
from pipeline.text_normalizer import normalize_text

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
MODEL = "lact-audio-asr-lact-nightlytest"
TRAIN = "train-clean-100"


def nightly_yaml(path: Path, raw: Path, features: Path) -> Path:
    """A nightly config on a tiny corpus: 2 rows a shard (so reuse is visible), a tiny model, 2 steps."""
    path.write_text(f"""
name: nightly-test
base_config: {REPO / 'configs' / 'demo-asr.yaml'}
config:
  data: {{root: {features}, test: test-clean, batch_size: 4}}
  model:
    config: {{hidden_size: 32, num_layers: 1, num_attention_heads: 2, num_lact_heads: 2,
             chunk_size: 512, window_size: 32}}
  optim: {{warmup_steps: 1}}
  train: {{max_steps: 2, eval_every: 2, log_every: 1, torch_threads: 1}}
  tracking: {{experiment: nightly-test-runs}}
corpus: {{corpus: librispeech, input: {raw}, rows_per_shard: 2}}
promotion: {{registered_name: {MODEL}, margin: 0.0, resamples: 2000}}
experiment: nightly-test
""")
    return path


def add_utterances(raw: Path, donor: Path, speaker: str, vocabulary: set[str] | None,
                   count: int = 2, text: str | None = None) -> list[str]:
    """New data arrives: `count` donor recordings under a new speaker in the training split.

    vocabulary: take only transcripts within these characters (the champion's output layer);
    text: use this transcript instead of the donor's."""
    picked = []
    for trans in sorted(donor.glob("*/*/*/*.trans.txt")):
        for line in trans.read_text().splitlines():
            utt, words = line.split(" ", 1)
            if vocabulary is None or set(normalize_text(words)) <= vocabulary:
                picked.append((trans.parent / f"{utt}.flac", text or words))
    assert len(picked) >= count, "the donor corpus has too few usable utterances"
    chapter = raw / TRAIN / speaker / "1"
    chapter.mkdir(parents=True)
    lines = []
    for i, (flac, words) in enumerate(picked[:count]):
        utt = f"{speaker}-1-{i:04d}"
        shutil.copy(flac, chapter / f"{utt}.flac")
        lines.append(f"{utt} {words}")
    (chapter / f"{speaker}-1.trans.txt").write_text("\n".join(lines) + "\n")
    return [u.split(" ")[0] for u in lines]


def vocabulary(features: Path) -> set[str]:
    return set(read_manifest(str(features / TRAIN))["text_tokenizer"]["symbols"])


def champion(alias: str = "champion") -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(MODEL, alias).version)
    except Exception:
        return None


def nightly_dir(night) -> Path:
    return night["root"] / "home" / "nightly"


@pytest.fixture(scope="module")
def night(tmp_path_factory, ray_cluster, toy_corpus):
    """A corpus, a work directory with its own MLflow store, and the first night's decision.
    New data comes from the session's toy corpus (other voices, other sentences)."""
    import mlflow

    from pipeline.synthetic.corpus import synthesize_corpus

    root = tmp_path_factory.mktemp("nightly")
    synthesize_corpus("librispeech", str(root / "raw"), utterances_per_split=4, seed=11)
    (root / "donor").symlink_to(toy_corpus.parent / "raw")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LACT_AUDIO_HOME", str(root / "home"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        config = nightly_yaml(root / "nightly.yaml", root / "raw", root / "features")
        assert main(["nightly", "--config", str(config), "--quiet"]) == 0
        first = latest_decision(root)
        mlflow.set_tracking_uri(f"sqlite:///{root / 'home' / 'mlflow.db'}")
        yield {"root": root, "config": config, "first": first}


def latest_decision(root: Path) -> dict:
    state = json.loads((root / "home" / "nightly" / "state.json").read_text())
    return json.loads(Path(state["decision"]).read_text())


def run(night, *overrides) -> int:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LACT_AUDIO_HOME", str(night["root"] / "home"))
        return main(["nightly", "--config", str(night["config"]), "--quiet", *overrides])


def decisions(night) -> list[dict]:
    files = sorted((night["root"] / "home" / "nightly").glob("*/decision.json"), key=lambda p: p.stat().st_mtime)
    return [json.loads(p.read_text()) for p in files]


def test_first_night_makes_the_first_champion(night):
    first = night["first"]
    assert first["action"] == "promoted" and "no champion yet" in first["reason"]
    assert first["champion_version"] is None and first["champion_score"] is None
    assert first["init"] == "scratch" and first["serving_version"] == first["challenger_version"]
    assert champion() == first["challenger_version"]
    assert 0.0 <= first["challenger_score"] == first["challenger_metrics"]["cer"] <= 5.0
    # recorded in MLflow too: the nightly run with its action, and the challenger as its child
    run = MlflowClient().get_run(first["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["action"] == "promoted"
    child = MlflowClient().get_run(first["challenger_run_id"])
    assert child.data.tags["mlflow.parentRunId"] == first["mlflow_run_id"]
    # the challenger is the version this night's training run registered
    assert MlflowClient().get_model_version(MODEL, first["challenger_version"]).run_id == first["challenger_run_id"]
    assert first["previous_champion_version"] is None and champion("previous-champion") is None
    # the test split is frozen: its hash and speakers pinned
    frozen = json.loads((nightly_dir(night) / "test_split.json").read_text())
    assert frozen["content_hash"] == read_manifest(frozen["test_split"])["content_hash"] == first["test_split_hash"]
    assert frozen["speakers"] and first["test_utterances"] == read_manifest(frozen["test_split"])["num_utterances"]


def test_second_night_without_new_data_does_nothing(night, capsys):
    before = len(decisions(night))
    assert run(night) == 0
    assert "no-new-data" in capsys.readouterr().out
    latest = decisions(night)[-1]
    assert len(decisions(night)) == before + 1
    assert latest["action"] == "no-new-data" and latest["challenger_version"] is None
    assert latest["preprocess"]["shards_written"] == 0          # nothing was redone
    assert latest["serving_version"] == champion() == night["first"]["challenger_version"]


def test_new_data_kept_or_promoted_by_the_margin(night):
    root, client = night["root"], MlflowClient()
    features = root / "features"
    shards_before = {s["path"]: s["sha256"] for s in read_manifest(str(features / TRAIN))["shards"]}

    add_utterances(root / "raw", root / "donor", "99990", vocabulary(features))
    held = champion()
    assert run(night, "promotion.margin=1e9") == 0                # no challenger can gain that much
    kept = decisions(night)[-1]
    assert kept["action"] == "kept" and champion() == held == kept["champion_version"]
    assert kept["challenger_version"] not in (None, held)
    assert kept["init"] == f"models:/{MODEL}/{held}"               # fine-tuned from the champion
    # only the new part was preprocessed: one new training shard, every earlier shard kept as is
    assert kept["preprocess"]["shards_written"] == 1
    after = {s["path"]: s["sha256"] for s in read_manifest(str(features / TRAIN))["shards"]}
    assert {k: after[k] for k in shards_before} == shards_before and len(after) == len(shards_before) + 1
    assert client.get_model_version(MODEL, kept["challenger_version"]).tags["nightly_action"] == "kept"

    add_utterances(root / "raw", root / "donor", "99991", vocabulary(features))
    assert run(night, "promotion.margin=-1e9") == 0               # the margin is no obstacle, the interval is
    second = decisions(night)[-1]
    assert second["champion_version"] == held and second["challenger_version"] not in (None, held)
    interval = second["interval"]
    assert interval["units"] == second["test_utterances"]
    # the rule as recorded: promoted exactly when the gain's interval lies above 0
    assert (second["action"] == "promoted") == (interval["low"] > 0), second["reason"]
    assert interval["difference"] == pytest.approx(second["champion_score"] - second["challenger_score"], abs=1e-9)
    if second["action"] == "promoted":
        assert champion() == second["challenger_version"] == second["serving_version"] != held
        assert champion("previous-champion") == held == second["previous_champion_version"]
    else:
        assert champion() == held and "does not exclude 0" in second["reason"]
    # both were scored on the same split by the same function; the scores are in MLflow
    assert second["champion_score"] == second["champion_metrics"]["cer"]
    metrics = client.get_run(second["mlflow_run_id"]).data.metrics
    assert metrics["champion_score"] == second["champion_score"]
    assert metrics["challenger_score"] == second["challenger_score"]


def test_rollback_swaps_champion_and_previous_champion(night, capsys):
    client = MlflowClient()
    if champion("previous-champion") is None:   # no promotion happened yet: as one would have left it
        kept = [d for d in decisions(night) if d["action"] == "kept"][-1]
        client.set_registered_model_alias(MODEL, "previous-champion", champion())
        client.set_registered_model_alias(MODEL, "champion", kept["challenger_version"])
    serving, previous = champion(), champion("previous-champion")
    assert serving != previous
    assert run(night, "rollback") == 0
    assert f"is version {previous}" in capsys.readouterr().out
    assert (champion(), champion("previous-champion")) == (previous, serving)
    rolled = decisions(night)[-1]
    assert rolled["action"] == "rolled-back" and rolled["serving_version"] == previous
    assert rolled["previous_champion_version"] == serving
    assert run(night, "rollback") == 0                             # a second rollback undoes the first
    assert (champion(), champion("previous-champion")) == (serving, previous)
    assert run(night, "status") == 0
    out = capsys.readouterr().out
    assert f"{MODEL}@champion is version {serving}" in out and "lock: free" in out and "rolled-back" in out


def test_a_failing_step_leaves_the_champion(night, capsys):
    root = night["root"]
    held, count = champion(), len(decisions(night))
    state = (nightly_dir(night) / "state.json").read_text()

    assert run(night, "promotion.margin=-1e9", "init=sideways") == 2    # a bad config: no night at all
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert len(decisions(night)) == count

    # New data with a character the champion's output layer has no unit for: fine-tuning it
    # fails after preprocessing, before anything is registered or moved.
    add_utterances(root / "raw", root / "donor", "99992", None, count=1, text="SEVEN 7 BEDS")
    assert run(night, "promotion.margin=-1e9") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.init_from" in err and "does not fit" in err and "repeated" not in err
    assert champion() == held and len(decisions(night)) == count + 1
    failed_night = decisions(night)[-1]
    assert failed_night["action"] == "failed" and not failed_night["repeated_failure"] and failed_night["alert"] is None
    assert (nightly_dir(night) / "state.json").read_text() == state   # retried next night
    failed = MlflowClient().get_run(failed_night["mlflow_run_id"])
    assert failed.info.status == "FAILED" and "does not fit" in failed.data.tags["error"]

    # From scratch the challenger trains and is registered, but the champion cannot be scored on
    # the new vocabulary: the night fails after registration, still before the alias moves.
    versions = len(MlflowClient().search_model_versions(f"name='{MODEL}'"))
    assert run(night, "promotion.margin=-1e9", "init=scratch") == 2
    assert "cannot be scored" in capsys.readouterr().err
    assert len(MlflowClient().search_model_versions(f"name='{MODEL}'")) == versions + 1
    assert champion() == held and decisions(night)[-1]["action"] == "failed"
    assert (nightly_dir(night) / "state.json").read_text() == state


def test_the_same_failure_two_nights_running_is_flagged(night, capsys):
    assert run(night, "promotion.margin=-1e9") == 2               # fails as two nights ago ("does not fit")
    assert "repeated" not in capsys.readouterr().err               # the night before failed otherwise
    assert run(night, "promotion.margin=-1e9") == 2               # ... and again
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "night failed [repeated" in err
    latest = decisions(night)[-1]
    assert latest["repeated_failure"] is True and latest["alert"].startswith("ALERT: ")
    tags = MlflowClient().get_run(latest["mlflow_run_id"]).data.tags
    assert tags["repeated_failure"] == "true"
    assert run(night, "status") == 1                               # monitoring can watch the exit status
    out = capsys.readouterr().out
    assert "ALERT: the nightly failed the same way two nights running" in out and "failed nights in a row: " in out


def test_a_changed_test_split_or_a_test_speaker_in_training_stops_the_night(night, capsys):
    root = night["root"]
    frozen = json.loads((nightly_dir(night) / "test_split.json").read_text())
    manifest_file = Path(frozen["test_split"]) / "manifest.json"
    original = manifest_file.read_text()
    rewritten = json.loads(original)
    rewritten["content_hash"] = "0" * 64          # the benchmark was preprocessed again by someone
    manifest_file.write_text(json.dumps(rewritten))
    versions = len(MlflowClient().search_model_versions(f"name='{MODEL}'"))
    try:
        assert run(night, "init=scratch") == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "changed since it was frozen" in err
    finally:
        manifest_file.write_text(original)
    # New raw files in the test split are ignored: it is not preprocessed again.
    test_speaker = frozen["speakers"][0]
    chapter = root / "raw" / TRAIN / test_speaker / "77"
    chapter.mkdir(parents=True)
    donor = next((root / "raw" / "test-clean" / test_speaker).glob("*/*.flac"))
    shutil.copy(donor, chapter / f"{test_speaker}-77-0000.flac")
    (chapter / f"{test_speaker}-77.trans.txt").write_text(f"{test_speaker}-77-0000 A VOICE FROM THE TEST SET\n")
    assert run(night, "init=scratch") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "speaker(s) of the frozen test split" in err and test_speaker in err
    # stopped before training: nothing registered
    assert len(MlflowClient().search_model_versions(f"name='{MODEL}'")) == versions
    assert json.loads((nightly_dir(night) / "test_split.json").read_text()) == frozen
