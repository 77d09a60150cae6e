"""Stage 1, plan (driver, cheap, no Ray): which utterances go into which shard, under which key.

Read the corpus listing (pipeline.readers), normalise transcripts, build the text tokenizer from
the training split(s), reject text that cannot be used, then group each split's utterances (sorted
by id) into shards of `rows_per_shard` and give each shard a key: the hash of its inputs and of
every setting that shapes its content. Equal keys mean equal shard bytes, which is what makes
re-runs skip finished shards.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from pipeline.errors import UserError
from pipeline.files import read_json
from pipeline.manifest import FORMAT_VERSION, MANIFEST, canonical_json
from pipeline.preprocessing.config import PreprocessConfig, is_training_split
from pipeline.quarantine import EMPTY_AFTER_NORMALIZATION, OOV_CHARACTERS
from pipeline.readers import read_corpus
from pipeline.records import Rejection, Utterance
from pipeline.shards import shard_name
from pipeline.text_normalizer import normalize_text
from pipeline.text_tokenizer import OutOfVocabulary
from pipeline.uri import join

DUPLICATE_UTT_ID = "duplicate_utt_id"


def content_key(obj) -> str:
    """sha256 of a JSON-able object in canonical form: the key of a shard or a cached tokenizer."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()


@dataclass
class ShardTask:
    """One shard to build: its place in the output, its key, and the rows that go in it."""
    split: str
    index: int
    name: str                    # shard-NNNNN.parquet
    uri: str
    key: str
    utterances: list[dict]       # utt_id, audio_uri, text, speaker, language, split, token_ids
    known_sha256: str | None = None   # from the previous run's manifest, saves re-hashing a skipped shard


@dataclass
class Plan:
    utterances: dict[str, list[dict]] = field(default_factory=dict)   # split -> rows, sorted by id
    rejections: list[Rejection] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    stats_splits: list[str] = field(default_factory=list)             # vocabulary and CMVN come from these
    inputs: int = 0


def read_listing(config: PreprocessConfig) -> tuple[list[Utterance], list[Rejection]]:
    utterances, rejections = [], []
    for record in read_corpus(config.corpus, config.input_uri, splits=config.splits, languages=config.languages):
        (rejections if isinstance(record, Rejection) else utterances).append(record)
    return utterances, rejections


def plan_text(config: PreprocessConfig, utterances: list[Utterance], rejections: list[Rejection],
              fit_text_tokenizer) -> tuple[Plan, object]:
    """Normalised, tokenised rows per split; `fit_text_tokenizer(train_texts)` builds the tokenizer."""
    plan = Plan(inputs=len(utterances) + len(rejections), rejections=list(rejections))
    order = dict.fromkeys([*(config.splits or []), *(u.split for u in utterances), *(r.split for r in rejections)])
    plan.splits = [s for s in order if s]

    # Defensive: a reader yields unique ids, but two rows with one id would collide in the shards.
    counts = Counter(u.utt_id for u in utterances)
    rows: list[dict] = []
    for u in utterances:
        row = {"utt_id": u.utt_id, "audio_uri": u.audio_uri, "text": normalize_text(u.text or "", u.language),
               "speaker": u.speaker or "", "language": u.language or "", "split": u.split}
        if counts[u.utt_id] > 1:
            plan.rejections.append(Rejection.of(row, DUPLICATE_UTT_ID, f"{counts[u.utt_id]} rows share this id"))
        elif not row["text"]:
            plan.rejections.append(Rejection.of(row, EMPTY_AFTER_NORMALIZATION,
                                                f"transcript {u.text!r} has no letters or digits"))
        else:
            rows.append(row)

    plan.stats_splits = [s for s in plan.splits if is_training_split(s)] or list(plan.splits)
    if not any(is_training_split(s) for s in plan.splits):
        config.log(f"no training split among {plan.splits}: vocabulary and CMVN come from all of them")
    train_texts = [r["text"] for r in rows if r["split"] in plan.stats_splits]
    if not train_texts:
        raise UserError(f"no usable transcripts in the training split(s) {plan.stats_splits} of {config.input_uri} "
                        "(see the reader's rejections)")
    tokenizer = fit_text_tokenizer(train_texts)


    for r in rows:
        try:
            r["token_ids"] = tokenizer.encode(r["text"])
        except OutOfVocabulary as exc:
            plan.rejections.append(Rejection.of(r, OOV_CHARACTERS, f"{exc} in {r['text']!r}"))
            continue
        plan.utterances.setdefault(r["split"], []).append(r)
    for split in plan.utterances:
        plan.utterances[split].sort(key=lambda r: r["utt_id"])
    return plan, tokenizer


def _previous_hashes(split_uri: str) -> dict[tuple[str, str], str]:
    """(shard name, key) -> sha256 from an earlier run's manifest, so skipped shards are not re-read."""
    try:
        manifest = read_json(join(split_uri, MANIFEST))
    except (FileNotFoundError, OSError, ValueError):
        return {}
    return {(s["path"], s.get("key", "")): s["sha256"] for s in manifest.get("shards", [])}


def plan_shards(config: PreprocessConfig, plan: Plan, content_settings: dict) -> list[ShardTask]:
    """Each split's rows in shards of rows_per_shard; `content_settings` is everything else that
    shapes a shard's bytes (features, length limits, tokenizer fingerprints)."""
    tasks = []
    for split in plan.splits:
        split_uri = join(config.output_uri, split)
        known = _previous_hashes(split_uri)
        rows = plan.utterances.get(split, [])
        for index, start in enumerate(range(0, len(rows), config.rows_per_shard)):
            chunk = rows[start:start + config.rows_per_shard]
            key = content_key({"v": FORMAT_VERSION, "split": split, "index": index, **content_settings,
                               "rows": [(r["utt_id"], r["audio_uri"], r["text"], r["speaker"], r["language"])
                                        for r in chunk]})
            name = shard_name(index, key)
            tasks.append(ShardTask(split, index, name, join(split_uri, name), key, chunk, known.get((name, key))))
    return tasks
