"""Stage 2, driver side: find the shards that are already complete, build the rest on Ray Data.

A shard whose file exists with the same key (read from its Parquet footer) is skipped: re-runs do
no work and leave the file byte-for-byte unchanged, and a killed run resumes with just the missing
shards. Only when some shard is missing is Ray started (`need_ray`), so a finished run re-runs
without a cluster. The rest go to Ray Data in tasks of several shards, the largest first
(shard_worker.process_shard on each), as many tasks in parallel as Ray has CPUs; each shard is
written by the task that builds it, and only a small JSON result per shard comes back.
"""

from __future__ import annotations

import json
import pickle
import sys
from concurrent.futures import ThreadPoolExecutor
from itertools import accumulate

from pipeline.files import sha256_of
from pipeline.preprocessing.config import PreprocessConfig
from pipeline.preprocessing.plan import ShardTask
from pipeline.preprocessing.shard_worker import process_shard
from pipeline.shards import file_names, read_shard_info

# Guided scheduling: each task takes a CPU's share of the shards still to hand out, at most
# MAX_SHARDS_PER_TASK. Large tasks first keep the per-task cost low (7-15 ms of a CPU between one
# task and the next: the driver's scheduler, the worker's block handling); ever smaller ones at the
# end keep every CPU busy until the last shard. Measured on 131 shards: at most 16 a task instead
# of 8 cut the idle task slots on one CPU from 0.30-0.33 s to 0.24-0.25 s; a whole CPU's share
# instead of half of it cut them on two CPUs from 0.46-0.47 s to 0.41 s (13 tasks instead of 20).
MAX_SHARDS_PER_TASK = 16


def task_sizes(num_items: int, cpus: int) -> list[int]:
    """How many items each task takes, in the order the tasks are handed out."""
    sizes, left = [], num_items
    while left:
        sizes.append(max(1, min(MAX_SHARDS_PER_TASK, left // max(1, cpus))))
        left -= sizes[-1]
    return sizes


def _each_item(batch: dict, fn, settings: dict) -> dict:
    """map_batches UDF: `fn` on every item of the block's task (one row: a list of items)."""
    out = [fn({"item": item}, settings) for items in batch["items"] for item in items]
    return {key: [o[key] for o in out] for key in out[0]}


def map_items(items: list[str | bytes], fn, settings: dict, sizes: list[int] | None = None):
    """A Ray dataset of `fn({"item": item}, settings)` for strings or bytes (the shard worker's
    UDFs take pickled dicts); a task takes the next `sizes[i]` items (default: one each)."""
    import ray

    ends = list(accumulate(sizes or [1] * len(items)))
    tasks = [{"items": items[start:end]} for start, end in zip([0, *ends], ends)]
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.op_resource_reservation_enabled
    context.enable_progress_bars = False   # our own tqdm bar counts shards and hours
    # Ray Data reserves half of the CPUs for operators' outputs by default; with one map operator
    # on a small cluster that left one of two CPUs idle much of the time (measured: 2 CPUs ran
    # 1.04x one CPU). The tasks' outputs are a few hundred bytes, so nothing needs the reserve.
    context.op_resource_reservation_enabled = False
    try:   # each dataset captures the context when it is created: map_batches' too
        dataset = ray.data.from_items(tasks, override_num_blocks=len(tasks))   # one task a block
        return dataset.map_batches(_each_item, batch_size=None, batch_format="numpy",
                                   fn_kwargs={"fn": fn, "settings": settings})
    finally:
        context.enable_progress_bars, context.op_resource_reservation_enabled = saved


def completed_shard(task: ShardTask) -> dict | None:
    """The result of a shard that already exists with this key (one footer read), else None."""
    info = read_shard_info(task.uri)
    if info is None or info.get("key") != task.key:
        return None
    return {**info, "sha256": task.known_sha256 or sha256_of(task.uri), "skipped": True, "cpu_seconds": 0.0}


def build_shards(config: PreprocessConfig, tasks: list[ShardTask], settings: dict, need_ray) -> list[dict]:
    """Results of every task (skipped or built), in no particular order."""
    # One listing per split folder, then a footer read only for the shards that exist: on a first
    # run, opening each missing file took 40 ms of the driver's time for 131 shards.
    present = {f"{folder}/{name}" for folder in {t.uri.rsplit("/", 1)[0] for t in tasks} for name in file_names(folder)}
    with ThreadPoolExecutor(16) as pool:
        done = list(pool.map(lambda t: completed_shard(t) if t.uri in present else None, tasks))
    results = [r for r in done if r is not None]
    # vars(), not dataclasses.asdict: asdict deep-copies every row, 0.2 s of driver time for
    # 8300 utterances before any task could start. Pickled, not JSON: 6 ms instead of 26 for
    # 131 shards (the token ids), and no task can start before it is done.
    pending = [pickle.dumps(vars(t)) for t, r in zip(tasks, done) if r is None]
    config.log(f"{sum(len(t.utterances) for t in tasks)} utterances in {len(tasks)} shards: "
               f"{len(results)} complete, {len(pending)} to do")
    if not pending:
        return results

    from tqdm import tqdm


    ray = need_ray()
    cpus = int(ray.cluster_resources().get("CPU", 0))
    sizes = task_sizes(len(pending), cpus)
    config.log(f"processing on Ray with {cpus} CPU(s): {len(sizes)} tasks of {sizes[0]} to {sizes[-1]} shards")
    dataset = map_items(pending, process_shard, settings, sizes)
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
