"""Raw corpus -> Ray Data -> Parquet shards of log-mel features, manifests, quarantine, summary.

    summary = run_preprocess(PreprocessConfig(corpus="librispeech", input_uri=..., output_uri=...))

Plan (driver, cheap): read the corpus listing (pipeline.readers), normalise transcripts, build
the text tokenizer from the training split(s), reject dev/test text with unseen characters,
group utterances into shards of `rows_per_shard` (sorted by id) and give each shard a key: the
hash of its inputs and of every setting that shapes its content.

Work (Ray Data, one task per shard, as many in parallel as Ray has CPUs): for each utterance
fetch bytes (local or s3://), decode, downmix, resample, validate, log-mel, audio tokens. Every
row gets an outcome (status "ok" or "quarantined" with a reason) inside the task, because an
exception escaping a Ray Data UDF would fail the whole dataset; good rows go to the shard, the
rest to the quarantine table. A shard whose file already exists with the same key is skipped
(idempotent re-runs, resume after a kill); new shards are written atomically.

Finish (driver): CMVN from the training shards' sums, one manifest.json per split (the same
CMVN and tokenizers in each), quarantine.parquet, summary.json.

A split is a training split when its name starts with "train". A run without one (e.g. only
dev-clean) builds the vocabulary and CMVN from all of its splits and says so in the manifest's
cmvn.computed_on.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field

import numpy as np

from pipeline.audio import DEFAULT_MAX_SECONDS, MIN_SECONDS, AudioError, prepare_audio, read_bytes
from pipeline.errors import UserError
from pipeline.manifest import FORMAT_VERSION, MANIFEST, SUMMARY, canonical_json, read_json, write_json, write_manifest
from pipeline.normalizer import CMVNStats, FeatureNormalizer
from pipeline.quarantine import (EMPTY_AFTER_NORMALIZATION, OOV_CHARACTERS, PROCESSING_ERROR, count_by_reason,
                                 quarantine_table)
from pipeline.ray_connection import ray_session
from pipeline.records import Rejection, Utterance
from pipeline.text_normalizer import normalize_text
from pipeline.uri import absolute, ensure_writable, filesystem, join, require_exists

CORPORA = ("librispeech", "commonvoice")
AUDIO_TOKEN_KINDS = ("mulaw", "kmeans")
TEXT_TOKENIZER_KINDS = ("char", "bpe")
QUARANTINE = "quarantine.parquet"
FETCH_THREADS = 4   # overlap object-store reads with decoding inside a task


@dataclass
class PreprocessConfig:
    corpus: str
    input_uri: str
    output_uri: str
    splits: list[str] | None = None
    languages: list[str] | None = None
    audio_tokens: str | None = None          # None | "mulaw" | "kmeans"
    text_tokenizer: str = "char"             # "char" | "bpe"
    bpe_vocab_size: int = 256
    mulaw_rate: int = 4000
    kmeans_clusters: int = 256
    kmeans_fit_utterances: int = 1000        # train utterances sampled to fit the codebook
    kmeans_fit_frames: int = 200_000         # frames kept from them (evenly strided)
    min_seconds: float = MIN_SECONDS
    max_seconds: float = DEFAULT_MAX_SECONDS
    rows_per_shard: int = 64
    seed: int = 0
    progress: bool = True

    def validate(self) -> None:
        if self.corpus not in CORPORA:
            raise UserError(f"unknown corpus {self.corpus!r}; expected one of: {', '.join(CORPORA)}")
        if self.audio_tokens not in (None, *AUDIO_TOKEN_KINDS):
            raise UserError(f"unknown --audio-tokens {self.audio_tokens!r}; expected mulaw or kmeans")
        if self.text_tokenizer not in TEXT_TOKENIZER_KINDS:
            raise UserError(f"unknown --text-tokenizer {self.text_tokenizer!r}; expected char or bpe")
        if self.rows_per_shard < 1:
            raise UserError("--rows-per-shard must be at least 1")
        if not 0 < self.min_seconds < self.max_seconds:
            raise UserError(f"need 0 < min seconds ({self.min_seconds}) < max seconds ({self.max_seconds})")
        if self.audio_tokens == "mulaw" and not 1000 <= self.mulaw_rate <= 16000:
            raise UserError("--mulaw-rate must be between 1000 and 16000 Hz")
        if self.bpe_vocab_size < 8 or self.kmeans_clusters < 2:
            raise UserError("--bpe-vocab-size must be >= 8 and --kmeans-clusters >= 2")


def is_training_split(split: str) -> bool:
    return split.startswith("train")


def _log(config: PreprocessConfig, message: str) -> None:
    if config.progress:
        print(f"[preprocess] {message}", file=sys.stderr, flush=True)


def _sha(obj) -> str:
    return hashlib.sha256(canonical_json(obj)).hexdigest()


# --------------------------------------------------------------------------------------- Ray

class LazyRay:
    """Starts (or connects to) Ray only when there is work for it: a re-run over complete shards
    with cached tokenizers never needs a cluster."""

    def __init__(self, address: str | None):
        self.address = address
        self.stack = ExitStack()
        self.ray = None
        self.start_seconds = 0.0

    def get(self):
        if self.ray is None:
            begin = time.time()
            self.ray = self.stack.enter_context(ray_session(self.address))
            self.start_seconds = time.time() - begin
        return self.ray

    def cpus(self) -> int | None:
        return int(self.ray.cluster_resources().get("CPU", 0)) if self.ray is not None else None

    def close(self) -> None:
        self.stack.close()


# ------------------------------------------------------------------------------- worker side

_extractors: dict[str, object] = {}


def _extractor(feature_config: dict):
    from pipeline.features import AudioFeatureExtractor

    key = json.dumps(feature_config, sort_keys=True)
    if key not in _extractors:
        _extractors[key] = AudioFeatureExtractor.from_config(feature_config)
    return _extractors[key]


def _fetch(uri: str):
    try:
        return read_bytes(uri)
    except Exception as exc:  # AudioError(audio_missing) or a storage error: decided per row
        return exc


def _outcome(utt: dict, fetched, settings: dict) -> dict:
    """One utterance -> {"status": "ok", ...row} or {"status": "quarantined", "reason", "detail"}."""
    try:
        if isinstance(fetched, Exception):
            raise fetched
        audio = prepare_audio(fetched, utt["audio_uri"], min_seconds=settings["min_seconds"],
                              max_seconds=settings["max_seconds"])
        features = _extractor(settings["feature"])(audio.waveform).astype(np.float16)
        row = {**utt, "status": "ok", "duration": audio.duration, "features": features,
               "repairs": audio.repairs}
        tokenizer = settings.get("audio_tokenizer")
        if tokenizer is not None:
            import torch

            if tokenizer.kind == "kmeans":
                row["audio_tokens"] = tokenizer.encode_features(features.astype(np.float32)).numpy()
            else:
                row["audio_tokens"] = tokenizer.encode(torch.from_numpy(audio.waveform)).numpy()
        return row
    except AudioError as exc:
        return {**utt, "status": "quarantined", "reason": exc.reason, "detail": exc.detail}
    except Exception as exc:  # never let one row fail the dataset
        return {**utt, "status": "quarantined", "reason": PROCESSING_ERROR,
                "detail": f"{utt['audio_uri']}: {type(exc).__name__}: {exc}"}


def process_shard(row: dict, settings: dict) -> dict:
    """Ray Data UDF: one planned shard in, one JSON result out (the shard is written here)."""
    from pipeline.shards import build_table, read_shard_info, sha256_of, to_parquet_bytes, write_atomic

    import torch

    cpu_start = time.process_time()
    torch.set_num_threads(1)     # one Ray CPU per task: more threads would fight the other tasks
    item = json.loads(row["item"])
    uri = item["uri"]
    existing = read_shard_info(uri)
    if existing is not None and existing.get("key") == item["key"]:
        sha = item.get("known_sha256") or sha256_of(uri)
        return {"result": json.dumps({**existing, "sha256": sha, "skipped": True,
                                      "cpu_seconds": time.process_time() - cpu_start})}

    utterances = item["utterances"]
    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        outcomes = [_outcome(u, data, settings)
                    for u, data in zip(utterances, pool.map(_fetch, [u["audio_uri"] for u in utterances]))]
    good = [o for o in outcomes if o["status"] == "ok"]
    bad = [o for o in outcomes if o["status"] != "ok"]

    stats = CMVNStats.empty(settings["feature"]["n_mels"])
    for o in good:
        stats = stats + CMVNStats.of(o["features"])
    info = {
        "key": item["key"],
        "split": item["split"],
        "index": item["index"],
        "path": item["name"],
        "num_rows": len(good),
        "seconds": float(sum(o["duration"] for o in good)),
        "frames": int(sum(o["features"].shape[0] for o in good)),
        "cmvn": stats.to_dict(),
        "rejections": [{"utt_id": o["utt_id"], "split": item["split"], "audio_uri": o["audio_uri"],
                        "reason": o["reason"], "detail": o["detail"]} for o in bad],
        "repaired": [{"utt_id": o["utt_id"], "repairs": o["repairs"]} for o in good if o["repairs"]],
    }
    data = to_parquet_bytes(build_table(good, settings.get("audio_tokenizer") is not None), info)
    write_atomic(uri, data)
    # Not in the shard's footer (it would make identical reruns differ): CPU time, for the bench.
    return {"result": json.dumps({**info, "sha256": hashlib.sha256(data).hexdigest(), "skipped": False,
                                  "bytes": len(data), "cpu_seconds": time.process_time() - cpu_start})}


def sample_frames(row: dict, settings: dict) -> dict:
    """Ray Data UDF for the k-means fit: log-mel frames of some training utterances, strided."""
    utterances = json.loads(row["item"])
    keep = settings["frames_per_utterance"]
    chunks = []
    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        for utt, data in zip(utterances, pool.map(_fetch, [u["audio_uri"] for u in utterances])):
            out = _outcome(utt, data, {**settings, "audio_tokenizer": None})
            if out["status"] == "ok":
                frames = out["features"]
                stride = max(1, math.ceil(len(frames) / keep))
                chunks.append(frames[::stride])
    frames = np.concatenate(chunks) if chunks else np.zeros((0, settings["feature"]["n_mels"]), np.float16)
    return {"frames": frames.tobytes(), "count": len(frames)}


# ------------------------------------------------------------------------------- driver side

@dataclass
class Plan:
    utterances: dict[str, list[dict]] = field(default_factory=dict)   # split -> rows, sorted by id
    rejections: list[dict] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    stats_splits: list[str] = field(default_factory=list)
    inputs: int = 0


def _read(config: PreprocessConfig) -> tuple[list[Utterance], list[Rejection]]:
    from pipeline.readers import read_corpus

    utterances, rejections = [], []
    for record in read_corpus(config.corpus, config.input_uri, splits=config.splits, languages=config.languages):
        (rejections if isinstance(record, Rejection) else utterances).append(record)
    return utterances, rejections


def _plan_text(config: PreprocessConfig, utterances: list[Utterance], rejections: list[Rejection], output: str):
    plan = Plan(inputs=len(utterances) + len(rejections))
    plan.rejections = [r.to_dict() for r in rejections]
    order = list(dict.fromkeys([*(config.splits or []), *(u.split for u in utterances),
                                *(r.split for r in rejections)]))
    plan.splits = [s for s in order if s]

    # Defensive: a reader yields unique ids, but two rows with one id would collide in the shards.
    counts = Counter(u.utt_id for u in utterances)
    rows: list[dict] = []
    for u in utterances:
        if counts[u.utt_id] > 1:
            plan.rejections.append({"utt_id": u.utt_id, "split": u.split, "audio_uri": u.audio_uri,
                                    "reason": "duplicate_utt_id", "detail": f"{counts[u.utt_id]} rows share this id"})
            continue
        text = normalize_text(u.text or "", u.language)
        if not text:
            plan.rejections.append({"utt_id": u.utt_id, "split": u.split, "audio_uri": u.audio_uri,
                                    "reason": EMPTY_AFTER_NORMALIZATION,
                                    "detail": f"transcript {u.text!r} has no letters or digits"})
            continue
        rows.append({"utt_id": u.utt_id, "audio_uri": u.audio_uri, "text": text, "speaker": u.speaker or "",
                     "language": u.language or "", "split": u.split})

    plan.stats_splits = [s for s in plan.splits if is_training_split(s)] or list(plan.splits)
    if not any(is_training_split(s) for s in plan.splits):
        _log(config, f"no training split among {plan.splits}: vocabulary and CMVN come from all of them")
    train_texts = [r["text"] for r in rows if r["split"] in plan.stats_splits]
    if not train_texts:
        raise UserError(f"no usable transcripts in the training split(s) {plan.stats_splits} of {config.input_uri} "
                        "(see the reader's rejections)")
    tokenizer = _text_tokenizer(config, train_texts, output)

    from pipeline.text_tokenizer import OutOfVocabulary

    for r in rows:
        try:
            r["token_ids"] = tokenizer.encode(r["text"])
        except OutOfVocabulary as exc:
            plan.rejections.append({"utt_id": r["utt_id"], "split": r["split"], "audio_uri": r["audio_uri"],
                                    "reason": OOV_CHARACTERS, "detail": f"{exc} in {r['text']!r}"})
            continue
        plan.utterances.setdefault(r["split"], []).append(r)
    for split in plan.utterances:
        plan.utterances[split].sort(key=lambda r: r["utt_id"])
    return plan, tokenizer


def _cached_artifact(output: str, name: str, key: str) -> bytes | None:
    """tokenizers/<name> if tokenizers/<name>.json says it was built from the same inputs."""
    try:
        meta = read_json(join(output, "tokenizers", f"{name}.json"))
        fs, path = filesystem(join(output, "tokenizers", name))
        with fs.open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, OSError, ValueError):
        return None
    if meta.get("key") != key or meta.get("sha256") != hashlib.sha256(data).hexdigest():
        return None
    return data


def _store_artifact(output: str, name: str, key: str, data: bytes) -> None:
    from pipeline.shards import write_atomic

    write_atomic(join(output, "tokenizers", name), data)
    write_json(join(output, "tokenizers", f"{name}.json"), {"key": key, "sha256": hashlib.sha256(data).hexdigest()})


def _text_tokenizer(config: PreprocessConfig, train_texts: list[str], output: str):
    from pipeline.text_tokenizer import BPE_MODEL_PATH, BPETokenizer, CharTokenizer

    if config.text_tokenizer == "char":
        return CharTokenizer.build(train_texts)
    key = _sha({"texts": sorted(train_texts), "vocab_size": config.bpe_vocab_size, "v": FORMAT_VERSION})
    name = BPE_MODEL_PATH.split("/", 1)[1]
    cached = _cached_artifact(output, name, key)
    if cached is not None:
        return BPETokenizer(cached)
    _log(config, f"training SentencePiece BPE (vocab {config.bpe_vocab_size}) on {len(train_texts)} transcripts")
    tokenizer = BPETokenizer.train(train_texts, config.bpe_vocab_size)
    _store_artifact(output, name, key, tokenizer.model_proto)
    return tokenizer


def _dataset(items: list[str]):
    import ray

    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars
    context.enable_progress_bars = False   # our own tqdm bar counts shards and hours
    try:
        return ray.data.from_items([{"item": i} for i in items], override_num_blocks=max(1, len(items)))
    finally:
        context.enable_progress_bars = saved


def _audio_tokenizer(config: PreprocessConfig, plan: Plan, settings: dict, output: str, need_ray):
    from pipeline.audio_tokenizer import KMEANS_CODEBOOK_PATH, KMeansMelTokenizer, MuLawTokenizer

    if config.audio_tokens is None:
        return None
    if config.audio_tokens == "mulaw":
        return MuLawTokenizer(rate_hz=config.mulaw_rate)
    train = sorted((r for s in plan.stats_splits for r in plan.utterances.get(s, [])),
                   key=lambda r: hashlib.sha256(r["utt_id"].encode()).hexdigest())[: config.kmeans_fit_utterances]
    if not train:
        raise UserError("no training utterances to fit the k-means audio codebook on")
    per_utt = max(1, config.kmeans_fit_frames // len(train))
    key = _sha({"utts": [(r["utt_id"], r["audio_uri"]) for r in train], "feature": settings["feature"],
                "clusters": config.kmeans_clusters, "per_utt": per_utt, "seed": config.seed,
                "min": config.min_seconds, "max": config.max_seconds, "v": FORMAT_VERSION})
    name = KMEANS_CODEBOOK_PATH.split("/", 1)[1]
    cached = _cached_artifact(output, name, key)
    if cached is not None:
        import io

        return KMeansMelTokenizer(np.load(io.BytesIO(cached), allow_pickle=False), settings["feature"])
    _log(config, f"fitting the k-means codebook ({config.kmeans_clusters}) on {len(train)} training utterances")
    need_ray()
    chunks = [json.dumps(train[i:i + 16]) for i in range(0, len(train), 16)]
    frames = [np.frombuffer(r["frames"], np.float16).reshape(-1, settings["feature"]["n_mels"])
              for r in _dataset(chunks).map(sample_frames, fn_kwargs={"settings": {
                  **settings, "frames_per_utterance": per_utt}}).iter_rows()]
    frames = np.concatenate(frames).astype(np.float32)
    try:
        tokenizer = KMeansMelTokenizer.fit(frames, config.kmeans_clusters, seed=config.seed,
                                           feature_config=settings["feature"])
    except ValueError as exc:
        raise UserError(f"cannot fit the k-means audio codebook: {exc}") from exc
    _store_artifact(output, name, key, tokenizer.to_bytes())
    return tokenizer


def _previous_hashes(split_uri: str) -> dict[tuple[str, str], str]:
    """(shard name, key) -> sha256 from an earlier run's manifest, so skipped shards are not re-read."""
    try:
        manifest = read_json(join(split_uri, MANIFEST))
    except (FileNotFoundError, OSError, ValueError):
        return {}
    return {(s["path"], s.get("key", "")): s["sha256"] for s in manifest.get("shards", [])}


def _completed_shard(item: dict) -> dict | None:
    """The result of a shard that already exists with this key (no Ray, one footer read), else None."""
    from pipeline.shards import read_shard_info, sha256_of

    info = read_shard_info(item["uri"])
    if info is None or info.get("key") != item["key"]:
        return None
    sha = item.get("known_sha256") or sha256_of(item["uri"])
    return {**info, "sha256": sha, "skipped": True, "cpu_seconds": 0.0}


def run_preprocess(config: PreprocessConfig, address: str | None = None) -> dict:
    """The whole run; returns the summary (also written to OUTPUT/summary.json)."""
    from pipeline.features import AudioFeatureExtractor
    from pipeline.shards import remove_stale, shard_name, write_atomic

    started = time.time()
    config.validate()
    config.input_uri, config.output_uri = absolute(config.input_uri), absolute(config.output_uri)
    output = config.output_uri
    require_exists(config.input_uri, "input")
    ensure_writable(output, "output")

    phases = {}
    utterances, reader_rejections = _read(config)
    phases["read_corpus"] = time.time() - started
    _log(config, f"{config.corpus} at {config.input_uri}: {len(utterances)} utterances, "
                 f"{len(reader_rejections)} rejected by the reader")
    plan, text_tokenizer = _plan_text(config, utterances, reader_rejections, output)
    feature = AudioFeatureExtractor().config()
    settings = {"feature": feature, "min_seconds": config.min_seconds, "max_seconds": config.max_seconds}

    phases["plan_text"] = time.time() - started - sum(phases.values())
    lazy_ray = LazyRay(address)
    try:
        audio_tokenizer = _audio_tokenizer(config, plan, settings, output, lazy_ray.get)
        settings["audio_tokenizer"] = audio_tokenizer
        audio_fingerprint = audio_tokenizer.fingerprint() if audio_tokenizer else None
        phases["audio_tokenizer"] = time.time() - started - sum(phases.values())

        items = []
        for split in plan.splits:
            split_uri = join(output, split)
            known = _previous_hashes(split_uri)
            rows = plan.utterances.get(split, [])
            for index, start in enumerate(range(0, len(rows), config.rows_per_shard)):
                chunk = rows[start:start + config.rows_per_shard]
                key = _sha({"v": FORMAT_VERSION, "split": split, "index": index, "feature": feature,
                            "min": config.min_seconds, "max": config.max_seconds,
                            "text": text_tokenizer.fingerprint(), "audio": audio_fingerprint,
                            "rows": [(r["utt_id"], r["audio_uri"], r["text"], r["speaker"], r["language"])
                                     for r in chunk]})
                name = shard_name(index)
                items.append({"split": split, "index": index, "name": name, "key": key,
                              "uri": join(split_uri, name), "known_sha256": known.get((name, key)),
                              "utterances": chunk})
        # Complete shards are found here, by their footers, so a finished run re-runs without Ray.
        with ThreadPoolExecutor(16) as pool:
            done = list(pool.map(_completed_shard, items))
        results = [r for r in done if r is not None]
        pending = [json.dumps(item) for item, r in zip(items, done) if r is None]
        phases["check_existing"] = time.time() - started - sum(phases.values())
        _log(config, f"{sum(len(v) for v in plan.utterances.values())} utterances in {len(items)} shards "
                     f"over {len(plan.splits)} split(s): {len(results)} complete, {len(pending)} to do")

        if pending:
            from tqdm import tqdm

            lazy_ray.get()
            _log(config, f"processing on Ray with {lazy_ray.cpus()} CPU(s)")
            dataset = _dataset(pending).map(process_shard, fn_kwargs={"settings": settings})
            with tqdm(total=len(items), initial=len(results), unit="shard", desc="preprocess",
                      disable=not config.progress, file=sys.stderr) as bar:
                hours = sum(r["seconds"] for r in results) / 3600
                for row in dataset.iter_rows():
                    result = json.loads(row["result"])
                    results.append(result)
                    hours += result["seconds"] / 3600
                    bar.set_postfix(hours=f"{hours:.2f}")
                    bar.update(1)
        cpus = lazy_ray.cpus()
        ray_start = lazy_ray.start_seconds
    finally:
        lazy_ray.close()

    phases["shards"] = time.time() - started - sum(phases.values())   # includes starting Ray, if needed
    # ---- finish: CMVN, manifests, quarantine, summary
    by_split: dict[str, list[dict]] = defaultdict(list)
    for result in results:
        by_split[result["split"]].append(result)
    stats = CMVNStats.empty(feature["n_mels"])
    for split in plan.stats_splits:
        for result in by_split[split]:
            stats = stats + CMVNStats.from_dict(result["cmvn"])
    if stats.count == 0:
        raise UserError(f"no usable training audio in {plan.stats_splits}: every utterance was quarantined "
                        f"(see {join(output, QUARANTINE)} reasons)")
    cmvn = FeatureNormalizer.from_stats(stats).to_dict(plan.stats_splits)

    rejections = list(plan.rejections)
    repaired = []
    for result in sorted(results, key=lambda r: (r["split"], r["index"])):
        rejections += result["rejections"]
        repaired += result["repaired"]
    write_atomic(join(output, QUARANTINE), _parquet_bytes(quarantine_table(rejections)))

    quarantined_by_split = Counter(r["split"] for r in rejections)
    split_summaries = {}
    for split in plan.splits:
        shards = sorted(by_split[split], key=lambda r: r["index"])
        seconds = sum(r["seconds"] for r in shards)
        manifest = write_manifest(join(output, split), {
            "split": split,
            "corpus": config.corpus,
            "num_utterances": sum(r["num_rows"] for r in shards),
            "hours": seconds / 3600,
            "seconds": seconds,
            "num_frames": sum(r["frames"] for r in shards),
            "num_quarantined": quarantined_by_split[split],
            "feature": feature,
            "min_seconds": config.min_seconds,
            "max_seconds": config.max_seconds,
            "cmvn": cmvn,
            "text_tokenizer": text_tokenizer.to_manifest(),
            "audio_tokenizer": audio_tokenizer.to_manifest() if audio_tokenizer else None,
            "shards": [{"path": r["path"], "num_rows": r["num_rows"], "sha256": r["sha256"], "key": r["key"]}
                       for r in shards],
        })
        remove_stale(join(output, split), {r["path"] for r in shards})
        split_summaries[split] = {"written": manifest["num_utterances"], "quarantined": quarantined_by_split[split],
                                  "hours": manifest["hours"], "shards": len(shards),
                                  "content_hash": manifest["content_hash"]}

    written = sum(s["written"] for s in split_summaries.values())
    summary = {
        "corpus": config.corpus,
        "input": config.input_uri,
        "output": output,
        "config": {k: v for k, v in asdict(config).items() if k not in ("progress",)},
        "inputs": plan.inputs,
        "written": written,
        "quarantined": len(rejections),
        "quarantined_by_reason": count_by_reason(rejections),
        "repaired": len(repaired),
        "repaired_by_kind": dict(sorted(Counter(k for r in repaired for k in r["repairs"]).items())),
        "repaired_utterances": repaired,
        "hours": sum(s["hours"] for s in split_summaries.values()),
        "splits": split_summaries,
        "shards_written": sum(not r["skipped"] for r in results),
        "shards_skipped": sum(r["skipped"] for r in results),
        "ray_cpus": cpus,                       # None: nothing to do, Ray was not started
        "ray_start_seconds": round(ray_start, 3),
        "task_cpu_seconds": round(sum(r["cpu_seconds"] for r in results), 3),
        "seconds": round(time.time() - started, 3),
    }
    phases["finish"] = time.time() - started - sum(phases.values())
    summary["phase_seconds"] = {k: round(v, 3) for k, v in phases.items()}
    write_json(join(output, SUMMARY), summary)
    _log(config, f"written {written} utterances ({summary['hours']:.3f} h), quarantined {len(rejections)} "
                 f"{summary['quarantined_by_reason']}, shards written {summary['shards_written']}, "
                 f"skipped {summary['shards_skipped']}, {summary['seconds']:.1f} s -> {output}")
    return summary


def _parquet_bytes(table) -> bytes:
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
