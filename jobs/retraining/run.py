"""One nightly retraining run, step by step:

    1. preprocess the corpus (idempotent: shards whose inputs did not change are kept as they are)
    2. compare the splits' content hashes with the last finished run's: unchanged -> no-new-data
    3. train a challenger (fine-tuned from the champion, or from scratch), registered with the
       challenger alias
    4. score champion and challenger on the same test split with the same function
    5. decide by the margin, record the decision (decision.json, an MLflow run), and only then
       move the champion alias (promotion), and last mark this data as seen (state.json)

Any failure before step 5's alias move leaves the champion and the state as they were, so the
next run tries again; the MLflow run of a failed night ends FAILED with the error as a tag.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

from omegaconf import DictConfig, OmegaConf

from jobs.retraining import decision as decisions
from jobs.retraining import registry
from jobs.retraining.config import training_config
from pipeline import uri as uris
from pipeline.manifest import write_json


def run_nightly(nightly: DictConfig, address: str | None = None, progress: bool = True) -> dict:
    """Returns the decision (also in <output>/<date>/decision.json and in MLflow)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from jobs.training import tracking

    output = uris.absolute(nightly.output or uris.join(uris.work_home(), "nightly"))
    uris.ensure_writable(output, "nightly output (config key 'output')")
    tracking.setup(nightly.experiment)
    client = MlflowClient()
    started = datetime.now(timezone.utc)
    run = client.create_run(mlflow.get_experiment_by_name(nightly.experiment).experiment_id,
                            run_name=f"{nightly.name}-{started:%Y%m%d-%H%M%S}")
    run_id = run.info.run_id
    try:
        decision = _night(nightly, output, run_id, address, progress, started)
    except BaseException as exc:
        client.set_tag(run_id, "error", f"{type(exc).__name__}: {exc}"[:5000])
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return decision


def _night(nightly: DictConfig, output: str, run_id: str, address: str | None, progress: bool,
           started: datetime) -> dict:
    from jobs.training.tasks import task_named
    from jobs.training.tracking import registered_name

    cfg = training_config(nightly)
    task = task_named(cfg.task)
    name = registered_name(cfg.task, cfg.model.architecture, cfg.tracking.registered_name)
    alias = nightly.promotion.alias
    root = uris.absolute(cfg.data.root)
    prep = preprocess(nightly, cfg, root, address, progress)
    data = {split: read_content_hash(uris.join(root, split)) for split in splits_of(cfg)}
    champion = registry.version_with_alias(name, alias)
    state = decisions.read_state(output)
    decision = {"date": started.isoformat(timespec="seconds"), "registered_name": name,
                "alias": alias, "metric": task.dev_metric, "margin": nightly.promotion.margin,
                "champion_version": champion, "challenger_version": None,
                "champion_score": None, "challenger_score": None, "data": data,
                "preprocess": {k: prep[k] for k in ("written", "shards_written", "shards_skipped")},
                "mlflow_run_id": run_id}

    if state is not None and state["data"] == data and champion is not None:
        decision.update(action=decisions.NO_NEW_DATA,
                        reason="the splits' content hashes equal the last finished run's")
        return record(decision, output, run_id, promote=None, data=None)

    init_from = f"models:/{name}/{champion}" if nightly.init == "champion" and champion else None
    cfg = training_config(nightly, init_from)
    log(progress, f"training the challenger {'from ' + init_from if init_from else 'from scratch'}")
    summary = train(cfg, address, run_id)
    challenger = registry.version_with_alias(name, nightly.promotion.challenger_alias)
    test_uri = uris.join(root, cfg.data.test)
    log(progress, f"scoring challenger v{challenger} and champion v{champion} on {test_uri}")
    challenger_metrics = registry.score_version(name, challenger, cfg, test_uri)
    champion_metrics = registry.score_version(name, champion, cfg, test_uri) if champion else None
    challenger_score = task.score(challenger_metrics)
    champion_score = task.score(champion_metrics) if champion_metrics else None
    action, reason = decisions.decide(champion_score, challenger_score, nightly.promotion.margin)
    decision.update(action=action, reason=reason, challenger_version=challenger,
                    champion_score=champion_score, challenger_score=challenger_score,
                    champion_metrics=champion_metrics, challenger_metrics=challenger_metrics,
                    init=init_from or "scratch", test_split=test_uri,
                    challenger_run_id=summary["mlflow_run_id"], challenger_run_dir=summary["run_dir"])
    return record(decision, output, run_id, promote=challenger if action == decisions.PROMOTED else None,
                  data=data)


def record(decision: dict, output: str, run_id: str, promote: str | None, data: dict | None) -> dict:
    """decision.json and the MLflow run first; then the alias move (promote: the version); then
    the state that marks this data as seen (data: None leaves it as it is)."""
    from mlflow.tracking import MlflowClient

    uri = decisions.new_decision_uri(output)
    decision["serving_version"] = promote or decision["champion_version"]
    decision["decision_file"] = uri
    write_json(uri, decision)
    client = MlflowClient()
    client.set_tag(run_id, "action", decision["action"])
    for key in ("champion_version", "challenger_version", "registered_name", "serving_version"):
        client.set_tag(run_id, key, str(decision[key]))
    for key in ("champion_score", "challenger_score"):
        if decision[key] is not None:
            client.log_metric(run_id, key, decision[key])
    client.log_param(run_id, "margin", decision["margin"])
    client.log_dict(run_id, decision, "decision.json")
    if decision["challenger_version"]:
        registry.tag_version(decision["registered_name"], decision["challenger_version"],
                             {"nightly_action": decision["action"], "nightly_run_id": run_id})
    if promote:
        registry.move_alias(decision["registered_name"], decision["alias"], promote)
    if data is not None:
        decisions.write_state(output, data, uri)
    return decision


def splits_of(cfg: DictConfig) -> list[str]:
    return list(dict.fromkeys(s for s in (cfg.data.train, cfg.data.dev, cfg.data.test) if s))


def preprocess(nightly: DictConfig, cfg: DictConfig, root: str, address: str | None,
               progress: bool) -> dict:
    """The corpus into the training config's data.root; only changed shards are rebuilt."""
    from pipeline.preprocess import PreprocessConfig, run_preprocess

    corpus = nightly.corpus
    return run_preprocess(PreprocessConfig(
        corpus=corpus.corpus, input_uri=corpus.input, output_uri=root, splits=splits_of(cfg),
        languages=OmegaConf.to_container(corpus.languages) if corpus.languages else None,
        audio_tokens=corpus.audio_tokens, text_tokenizer=corpus.text_tokenizer,
        rows_per_shard=corpus.rows_per_shard, progress=progress), address=address)


def read_content_hash(split_uri: str) -> str:
    from pipeline.manifest import read_manifest

    return read_manifest(split_uri)["content_hash"]


def train(cfg: DictConfig, address: str | None, parent_run_id: str) -> dict:
    from jobs.training.run import run_training

    return run_training(cfg, address=address, echo=False, parent_run_id=parent_run_id)


def log(progress: bool, message: str) -> None:
    if progress:
        print(f"[nightly] {message}", file=sys.stderr, flush=True)
