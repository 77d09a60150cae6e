"""One nightly retraining run, step by step, under the nightly lock (one night at a time):

    1. preprocess the corpus (idempotent: shards whose inputs did not change are kept as they are);
       the test split only at the first night, which freezes it (jobs/nightly/frozen.py)
    2. check the frozen test split (same content hash, no test speaker in the training split)
    3. compare the splits' content hashes with the last finished run's: unchanged -> no-new-data
    4. train a challenger (fine-tuned from the champion, or from scratch); the challenger is the
       version that this night's training run registered (found by its run id)
    5. score champion and challenger per utterance on the frozen test split with the same function
    6. decide (margin + paired bootstrap interval), record the decision (decision.json, an MLflow
       run), and only then move the aliases (previous-champion, then champion), and last mark this
       data as seen (state.json)

Any failure before step 6's alias move leaves the champion and the state as they were, so the
next run tries again; a failed night records a `failed` decision, its MLflow run ends FAILED with
the error as a tag, and the same failure two nights running is flagged (`repeated_failure`, an
`alert` line) in decision.json and in `lact-audio nightly status`.
"""

from __future__ import annotations

import sys
import traceback
from datetime import datetime, timezone

from omegaconf import DictConfig, OmegaConf

from jobs.nightly import decision as decisions
from jobs.nightly import frozen as frozen_split
from jobs.nightly import registry
from jobs.nightly.config import training_config
from jobs.nightly.lock import NightLock
from jobs.runs import tracking
from jobs.tasks import task_named
from jobs.training.run import run_training
from pipeline import uri as uris
from pipeline.errors import UserError
from pipeline.manifest import read_manifest
from pipeline.preprocess import PreprocessConfig, run_preprocess


def output_of(nightly: DictConfig) -> str:
    return uris.absolute(nightly.output or uris.join(uris.work_home(), "nightly"))


def run_nightly(nightly: DictConfig, address: str | None = None, progress: bool = True) -> dict:
    """Returns the decision (also in <output>/<date>/decision.json and in MLflow). A failed night
    raises a one-line UserError after recording its failure."""
    output = output_of(nightly)
    uris.ensure_writable(output, "nightly output (config key 'output')")
    with NightLock(output, nightly.lock_hours, "night") as lock:
        tracking.setup(nightly.experiment)
        started = datetime.now(timezone.utc)
        run = tracking.RunById.create(nightly.experiment, run_name=f"{nightly.name}-{started:%Y%m%d-%H%M%S}")
        try:
            decision = _night(nightly, output, run.run_id, address, progress, started, lock)
        except Exception as exc:
            raise _failed(nightly, output, run.run_id, started, exc) from exc
        except BaseException:   # interrupted: not a failure of the night's work
            run.end("KILLED")
            raise
        run.end("FINISHED")
    return decision


def _failed(nightly: DictConfig, output: str, run_id: str, started: datetime, exc: Exception) -> UserError:
    """Record a failed night (decision.json, the MLflow run) and return the one-line error to raise."""
    first = (str(exc).strip().splitlines() or [""])[0]
    error = first if isinstance(exc, UserError) else f"{type(exc).__name__}: {first}"
    signature = decisions.failure_signature(error)
    history = decisions.all_decisions(output)
    repeated = decisions.repeated_failure(history[-1] if history else None, signature)
    record = {"date": started.isoformat(timespec="seconds"), "action": decisions.FAILED, "error": error,
              "failure_signature": signature, "repeated_failure": repeated, "mlflow_run_id": run_id,
              "alert": (f"ALERT: the nightly failed the same way two nights running: {error}"
                        if repeated else None)}
    run = tracking.RunById(run_id)
    uri = None
    try:
        uri = decisions.write_new_decision(output, record)
        run.set_tags({"error": error[:5000], "failure_signature": signature,
                      "repeated_failure": str(repeated).lower()})
        run.log_text("".join(traceback.format_exception(exc)), "traceback.txt")
    finally:
        run.end("FAILED")
    flag = " [repeated: the same failure as the night before]" if repeated else ""
    return UserError(f"night failed{flag}: {error} (decision {uri}, MLflow run {run_id})")


def _night(nightly: DictConfig, output: str, run_id: str, address: str | None, progress: bool,
           started: datetime, lock: NightLock) -> dict:
    cfg = training_config(nightly)
    name = tracking.registered_name(cfg.task, cfg.model.architecture, cfg.tracking.registered_name)
    promotion = nightly.promotion
    root = uris.absolute(cfg.data.root)
    test_uri = uris.join(root, cfg.data.test)
    prep, frozen = prepare_splits(nightly, cfg, output, address, progress, lock)
    data = {split: read_content_hash(uris.join(root, split)) for split in splits_of(cfg)}
    champion = tracking.version_with_alias(name, promotion.alias)
    state = decisions.read_state(output)
    decision = {"date": started.isoformat(timespec="seconds"), "registered_name": name,
                "alias": promotion.alias, "previous_alias": promotion.previous_alias,
                "metric": task_named(cfg.task).dev_metric, "margin": promotion.margin,
                "champion_version": champion, "challenger_version": None, "previous_champion_version": None,
                "champion_score": None, "challenger_score": None, "data": data,
                "test_split": test_uri, "test_split_hash": frozen["content_hash"],
                "preprocess": {k: prep[k] for k in ("written", "shards_written", "shards_skipped")},
                "mlflow_run_id": run_id}

    if state is not None and state["data"] == data and champion is not None:
        decision.update(action=decisions.NO_NEW_DATA,
                        reason="the splits' content hashes equal the last finished run's")
        return record(decision, output, run_id, promote=None, data=None)
    challenger = challenge(nightly, decision, address, run_id, progress, lock)
    return record(decision, output, run_id,
                  promote=challenger if decision["action"] == decisions.PROMOTED else None, data=data)


def prepare_splits(nightly: DictConfig, cfg: DictConfig, output: str, address: str | None,
                   progress: bool, lock: NightLock) -> tuple[dict, dict]:
    """Preprocess, freeze the test split at the first night and check it; (preprocessing's
    summary, the frozen split's record)."""
    root = uris.absolute(cfg.data.root)
    test_uri = uris.join(root, cfg.data.test)
    frozen = frozen_split.read_frozen(output)
    # Once frozen, the test split is never preprocessed again: new raw files in it are ignored.
    prep = preprocess(nightly, cfg, root, address, progress,
                      splits=[s for s in splits_of(cfg) if frozen is None or s != cfg.data.test])
    lock.renew()
    if frozen is None:
        log(progress, f"freezing the test split {test_uri}")
        frozen = frozen_split.freeze(output, test_uri)
    frozen_split.check(frozen, test_uri, [uris.join(root, cfg.data.train)])
    return prep, frozen


def challenge(nightly: DictConfig, decision: dict, address: str | None, run_id: str, progress: bool,
              lock: NightLock) -> str:
    """Train the challenger, score it and the champion per utterance on the frozen test split and
    decide; the decision is completed in place. Returns the challenger's version."""
    name, champion, test_uri = decision["registered_name"], decision["champion_version"], decision["test_split"]
    promotion = nightly.promotion
    init_from = f"models:/{name}/{champion}" if nightly.init == "champion" and champion else None
    cfg = training_config(nightly, init_from)
    task = task_named(cfg.task)
    log(progress, f"training the challenger {'from ' + init_from if init_from else 'from scratch'}")
    summary = run_training(cfg, address=address, echo=False, parent_run_id=run_id)
    lock.renew()
    challenger = registry.version_of_run(name, summary["mlflow_run_id"])
    log(progress, f"scoring challenger v{challenger} and champion v{champion} on {test_uri}")
    challenger_scores = registry.score_version(name, challenger, cfg, test_uri)
    champion_scores = registry.score_version(name, champion, cfg, test_uri) if champion else None
    if champion_scores is not None and champion_scores["utt_ids"] != challenger_scores["utt_ids"]:
        raise RuntimeError("champion and challenger were scored on different utterances")
    action, reason, interval = decisions.decide(
        (champion_scores["errors"], champion_scores["totals"]) if champion_scores else None,
        (challenger_scores["errors"], challenger_scores["totals"]), promotion.margin,
        confidence=promotion.confidence, resamples=promotion.resamples, seed=promotion.seed)
    decision.update(action=action, reason=reason, challenger_version=challenger, interval=interval,
                    champion_score=task.score(champion_scores["metrics"]) if champion_scores else None,
                    challenger_score=task.score(challenger_scores["metrics"]),
                    champion_metrics=champion_scores["metrics"] if champion_scores else None,
                    challenger_metrics=challenger_scores["metrics"],
                    test_utterances=len(challenger_scores["utt_ids"]),
                    previous_champion_version=champion if action == decisions.PROMOTED else None,
                    init=init_from or "scratch", challenger_run_id=summary["mlflow_run_id"],
                    challenger_run_dir=summary["run_dir"])
    return challenger


def record(decision: dict, output: str, run_id: str, promote: str | None, data: dict | None) -> dict:
    """decision.json and the MLflow run first; then the alias move (promote: the version); then
    the state that marks this data as seen (data: None leaves it as it is)."""
    decision["serving_version"] = promote or decision["champion_version"]
    uri = decisions.write_new_decision(output, decision)
    run = tracking.RunById(run_id)
    run.set_tags({"action": decision["action"],
                  **{key: str(decision[key]) for key in ("champion_version", "challenger_version", "registered_name",
                                                         "serving_version", "previous_champion_version")}})
    for key in ("champion_score", "challenger_score"):
        if decision[key] is not None:
            run.log_metric(key, decision[key])
    run.log_param("margin", decision["margin"])
    run.log_dict(decision, "decision.json")
    if decision["challenger_version"]:
        tracking.tag_version(decision["registered_name"], decision["challenger_version"],
                             {"nightly_action": decision["action"], "nightly_run_id": run_id})
    if promote:
        registry.promote(decision["registered_name"], decision["alias"], decision["previous_alias"], promote,
                         old=decision["champion_version"])
    if data is not None:
        decisions.write_state(output, data, uri)
    return decision


def splits_of(cfg: DictConfig) -> list[str]:
    return list(dict.fromkeys(s for s in (cfg.data.train, cfg.data.dev, cfg.data.test) if s))


def preprocess(nightly: DictConfig, cfg: DictConfig, root: str, address: str | None,
               progress: bool, splits: list[str]) -> dict:
    """The corpus's `splits` into the training config's data.root; only changed shards are rebuilt."""
    corpus = nightly.corpus
    return run_preprocess(PreprocessConfig(
        corpus=corpus.corpus, input_uri=corpus.input, output_uri=root, splits=splits,
        languages=OmegaConf.to_container(corpus.languages) if corpus.languages else None,
        audio_tokens=corpus.audio_tokens, text_tokenizer=corpus.text_tokenizer,
        rows_per_shard=corpus.rows_per_shard, progress=progress), address=address)


def read_content_hash(split_uri: str) -> str:
    return read_manifest(split_uri)["content_hash"]


def log(progress: bool, message: str) -> None:
    if progress:
        print(f"[nightly] {message}", file=sys.stderr, flush=True)
