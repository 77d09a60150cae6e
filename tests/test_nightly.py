"""`lact-audio nightly` end to end on a real local Ray cluster and a real MLflow SQLite registry:
the first night makes the first champion, a night without new data does nothing, new utterances
in the corpus give a challenger that is kept or promoted by the margin rule, and a failing step
(a bad config; new data whose vocabulary the champion cannot take, found before training or,
from scratch, after the challenger is registered) leaves the champion alone."""

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
promotion: {{registered_name: {MODEL}, margin: 0.0}}
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


def champion() -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(MODEL, "champion").version)
    except Exception:
        return None


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
    assert run(night, "promotion.margin=-1e9") == 0               # any challenger wins
    promoted = decisions(night)[-1]
    assert promoted["action"] == "promoted" and promoted["champion_version"] == held
    assert champion() == promoted["challenger_version"] == promoted["serving_version"] != held
    # both were scored on the same split by the same function; the scores are in MLflow
    assert promoted["champion_score"] == promoted["champion_metrics"]["cer"]
    metrics = client.get_run(promoted["mlflow_run_id"]).data.metrics
    assert metrics["champion_score"] == promoted["champion_score"]
    assert metrics["challenger_score"] == promoted["challenger_score"]


def test_a_failing_step_leaves_the_champion(night, capsys):
    root = night["root"]
    held, count = champion(), len(decisions(night))
    state = (root / "home" / "nightly" / "state.json").read_text()

    assert run(night, "promotion.margin=-1e9", "init=sideways") == 2    # a bad config
    assert capsys.readouterr().err.strip().count("\n") == 0

    # New data with a character the champion's output layer has no unit for: fine-tuning it
    # fails after preprocessing, before anything is registered or moved.
    add_utterances(root / "raw", root / "donor", "99992", None, count=1, text="SEVEN 7 BEDS")
    assert run(night, "promotion.margin=-1e9") == 2
    err = capsys.readouterr().err
    assert "train.init_from" in err and "does not fit" in err
    assert champion() == held and len(decisions(night)) == count
    assert (root / "home" / "nightly" / "state.json").read_text() == state   # retried next night
    failed = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("nightly-test").experiment_id],
        order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert failed.info.status == "FAILED" and "does not fit" in failed.data.tags["error"]

    # From scratch the challenger trains and is registered, but the champion cannot be scored on
    # the new vocabulary: the night fails after registration, still before the alias moves.
    versions = len(MlflowClient().search_model_versions(f"name='{MODEL}'"))
    assert run(night, "promotion.margin=-1e9", "init=scratch") == 2
    assert "cannot be scored" in capsys.readouterr().err
    assert len(MlflowClient().search_model_versions(f"name='{MODEL}'")) == versions + 1
    assert champion() == held and len(decisions(night)) == count
    assert (root / "home" / "nightly" / "state.json").read_text() == state
