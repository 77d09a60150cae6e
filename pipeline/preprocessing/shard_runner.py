"""Stage 2, driver side: find the shards that are already complete, build the rest on Ray Data.

A shard whose file exists with the same key (read from its Parquet footer) is skipped: re-runs do
no work and leave the file byte-for-byte unchanged, and a killed run resumes with just the missing
shards. Only when some shard is missing is Ray started (`need_ray`), so a finished run re-runs
without a cluster. The rest go to Ray Data, one task per shard (shard_worker.process_shard), as many
in parallel as Ray has CPUs; each task writes its shard and returns a small JSON result.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

from pipeline.preprocessing.config import PreprocessConfig
from pipeline.preprocessing.plan import ShardTask


def items_dataset(items: list[str]):
    """A Ray dataset of JSON strings, one block (so one task) per item."""
    import ray

    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars
    context.enable_progress_bars = False   # our own tqdm bar counts shards and hours
    try:
        return ray.data.from_items([{"item": i} for i in items], override_num_blocks=max(1, len(items)))
    finally:
        context.enable_progress_bars = saved


def completed_shard(task: ShardTask) -> dict | None:
    """The result of a shard that already exists with this key (one footer read), else None."""
    from pipeline.shards import read_shard_info, sha256_of

    info = read_shard_info(task.uri)
    if info is None or info.get("key") != task.key:
        return None
    return {**info, "sha256": task.known_sha256 or sha256_of(task.uri), "skipped": True, "cpu_seconds": 0.0}


def build_shards(config: PreprocessConfig, tasks: list[ShardTask], settings: dict, need_ray) -> list[dict]:
    """Results of every task (skipped or built), in no particular order."""
    with ThreadPoolExecutor(16) as pool:
        done = list(pool.map(completed_shard, tasks))
    results = [r for r in done if r is not None]
    pending = [json.dumps(asdict(t)) for t, r in zip(tasks, done) if r is None]
    config.log(f"{sum(len(t.utterances) for t in tasks)} utterances in {len(tasks)} shards: "
               f"{len(results)} complete, {len(pending)} to do")
    if not pending:
        return results

    from tqdm import tqdm

    from pipeline.preprocessing.shard_worker import process_shard

    ray = need_ray()
    config.log(f"processing on Ray with {int(ray.cluster_resources().get('CPU', 0))} CPU(s)")
    dataset = items_dataset(pending).map(process_shard, fn_kwargs={"settings": settings})
    with tqdm(total=len(tasks), initial=len(results), unit="shard", desc="preprocess",
              disable=not config.progress, file=sys.stderr) as bar:
        hours = sum(r["seconds"] for r in results) / 3600
        for row in dataset.iter_rows():
            result = json.loads(row["result"])
            results.append(result)
            hours += result["seconds"] / 3600
            bar.set_postfix(hours=f"{hours:.2f}")
            bar.update(1)
    return results
