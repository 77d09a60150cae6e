"""Stage 3, finish (driver): CMVN from the training shards' sums, one manifest.json per split (the
same CMVN and tokenizers in each), quarantine.parquet with every rejection, and the run's counts.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict

from pipeline.errors import UserError
from pipeline.files import write_atomic
from pipeline.manifest import write_manifest
from pipeline.normalizer import CMVNStats, FeatureNormalizer
from pipeline.preprocessing.config import PreprocessConfig
from pipeline.preprocessing.plan import Plan
from pipeline.quarantine import count_by_reason, quarantine_table
from pipeline.records import Rejection
from pipeline.shards import remove_stale
from pipeline.uri import join

QUARANTINE = "quarantine.parquet"


def _parquet_bytes(table) -> bytes:
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _cmvn(plan: Plan, by_split: dict[str, list[dict]], n_mels: int, output: str) -> dict:
    stats = CMVNStats.empty(n_mels)
    for split in plan.stats_splits:
        for result in by_split[split]:
            stats = stats + CMVNStats.from_dict(result["cmvn"])
    if stats.count == 0:
        raise UserError(f"no usable training audio in {plan.stats_splits}: every utterance was quarantined "
                        f"(see {join(output, QUARANTINE)} reasons)")
    return FeatureNormalizer.from_stats(stats).to_dict(plan.stats_splits)


def finish(config: PreprocessConfig, plan: Plan, results: list[dict], shared: dict) -> dict:
    """Write quarantine and manifests; returns the counts for the summary. `shared` is what every
    manifest carries besides its own shards: feature, text_tokenizer, audio_tokenizer."""
    output = config.output_uri
    by_split: dict[str, list[dict]] = defaultdict(list)
    for result in sorted(results, key=lambda r: (r["split"], r["index"])):
        by_split[result["split"]].append(result)
    cmvn = _cmvn(plan, by_split, shared["feature"]["n_mels"], output)

    rejections = list(plan.rejections)
    repaired = []
    for split in sorted(by_split):
        for result in by_split[split]:
            rejections += [Rejection.from_dict(r) for r in result["rejections"]]
            repaired += result["repaired"]
    write_atomic(join(output, QUARANTINE), _parquet_bytes(quarantine_table(rejections)))

    quarantined_by_split = Counter(r.split for r in rejections)
    split_summaries = {}
    for split in plan.splits:
        shards = by_split[split]
        seconds = sum(r["seconds"] for r in shards)
        manifest = write_manifest(join(output, split), {
            "split": split,
            "corpus": config.corpus,
            "num_utterances": sum(r["num_rows"] for r in shards),
            "hours": seconds / 3600,
            "seconds": seconds,
            "num_frames": sum(r["frames"] for r in shards),
            "num_quarantined": quarantined_by_split[split],
            "min_seconds": config.min_seconds,
            "max_seconds": config.max_seconds,
            "cmvn": cmvn,
            **shared,
            "shards": [{"path": r["path"], "num_rows": r["num_rows"], "sha256": r["sha256"], "key": r["key"]}
                       for r in shards],
        })
        remove_stale(join(output, split), {r["path"] for r in shards})
        split_summaries[split] = {"written": manifest["num_utterances"], "quarantined": quarantined_by_split[split],
                                  "hours": manifest["hours"], "shards": len(shards),
                                  "content_hash": manifest["content_hash"]}
    return {
        "inputs": plan.inputs,
        "written": sum(s["written"] for s in split_summaries.values()),
        "quarantined": len(rejections),
        "quarantined_by_reason": count_by_reason(rejections),
        "repaired": len(repaired),
        "repaired_by_kind": dict(sorted(Counter(k for r in repaired for k in r["repairs"]).items())),
        "repaired_utterances": repaired,
        "hours": sum(s["hours"] for s in split_summaries.values()),
        "splits": split_summaries,
        "shards_written": sum(not r["skipped"] for r in results),
        "shards_skipped": sum(r["skipped"] for r in results),
    }
