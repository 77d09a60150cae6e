"""The MLflow model registry as the nightly sees it: the version a training run registered,
scoring a version, and moving the aliases (the one step that changes what is served). Reading
and writing the registry itself goes through jobs/runs/tracking.py."""

from __future__ import annotations

from jobs.nightly.scoring import utterance_scores
from jobs.runs import tracking
from jobs.runs.model_io import load_model
from pipeline.errors import UserError
from pipeline.manifest import read_manifest


def version_of_run(name: str, run_id: str) -> str:
    """The version of `name` that the training run `run_id` registered: the challenger is found by
    its own run, never by re-reading an alias that a concurrent train or tune may have moved."""
    versions = tracking.versions_of_run(name, run_id)
    if not versions:
        raise UserError(f"the training run {run_id} registered no version of {name}")
    return str(max(versions))


def score_version(name: str, version: str, cfg, test_uri: str) -> dict:
    """Per-utterance scores and metrics of one registered version on a split, the same way for
    every version (jobs/nightly/scoring.py)."""
    model, meta = load_model(f"models:/{name}/{version}")
    manifest = read_manifest(test_uri)
    # The split's tokenizers decode the model's outputs: a model trained on another vocabulary
    # would be scored on garbage (the old tokenizer is not kept).
    for field, tokenizer in (("vocab_size", "text_tokenizer"), ("audio_vocab_size", "audio_tokenizer")):
        ours, theirs = meta["model_config"].get(field), (manifest.get(tokenizer) or {}).get("vocab_size")
        if ours is not None and theirs is not None and int(ours) != int(theirs):
            raise UserError(f"{name} version {version} was trained on a {tokenizer} of {ours} symbols, "
                            f"the test split {test_uri} has {theirs}: it cannot be scored there")
    return utterance_scores(model, cfg, test_uri)


def promote(name: str, alias: str, previous_alias: str, version: str, old: str | None) -> None:
    """`previous_alias` to the old champion first, then `alias` to the new one: at every moment
    one of them names a version that can serve."""
    if old is not None:
        tracking.set_alias(name, previous_alias, old)
    tracking.set_alias(name, alias, version)
