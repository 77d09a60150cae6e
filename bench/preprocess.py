"""Preprocessing speed and where its time goes: bare loop vs shards in-process vs the Ray pipeline.

    .venv/bin/python bench/preprocess.py [--hours 5] [--corpus DIR] [--out bench/results/preprocess.json]
        [--address ADDR]   # also on a running cluster, e.g. the one `lact-audio cluster up` starts

On one synthetic corpus (pipeline.synthetic, LibriSpeech layout, made once and reused), each run
after a warm-up so that imports, filterbanks and Ray's worker processes are not what is measured:
  bare       one process, no Ray, no writing: read bytes + decode + downmix/resample + log-mel.
  bare_2proc the bare loop in two processes at once, each on half the files: how far the machine
             itself scales from one core to two (shared caches and memory), the ceiling for
             the pipeline's 2-CPU speed-up.
  in_process the pipeline's own shard code (pipeline.preprocessing.shard_worker.build_shard) in this
             process, no Ray: adds float16, CMVN sums, Parquet encoding and writing to the bare loop.
  pipeline   the full `run_preprocess` on a local Ray with 1 CPU and one with 2 CPUs, into fresh
             outputs; the two alternate (a fresh Ray for each run), so that the speed-up compares
             runs of the same minutes, as the cost ratios do.
Every measurement runs --repeats times (default 3), and each is paired with the bare loop it is
compared with, run just before it on every file: the bare loop with the in-process run (they
alternate), the bare loop with each 1-CPU run, the two-process bare loop with each 2-CPU run. On
this shared 2-core machine the same bare loop moved by 5-10 % between minutes of one bench run,
more than the differences looked for, so the cost ratios are the medians of the paired ratios.
The JSON keeps every wall time ("wall_seconds_all") and every paired ratio; each figure is the
run with the median wall time, and the unpaired ratios between those medians are kept too.
Per-phase times: the tasks' own (fetch wait, decode, resample, mel, CMVN, Parquet, write,
checksum), the driver's stages (plan, shards, finish), task-slot idle time (cores x shard wall -
task wall: task scheduling, start-up and the tail), and the CPU seconds of this driver process,
of the worker processes that run tasks and of Ray's own (raylet, GCS, dashboard, log monitor,
agents, Ray Data's actors), read with psutil.
Targets (issue 13): pipeline cost per audio second <= 1.25x the bare loop's, paired (1 CPU against
the bare loop in one process, 2 CPUs against it in two processes; both must meet it); 2 CPUs
>= 1.8x one CPU (median wall times; "speedup_2cpu_vs_1cpu_paired" is the median of the ratios of
each alternating pair of runs, and "speedup_bare_2proc_vs_bare_paired" the machine's own 1 -> 2
process scaling from the bare loops run just before them).
The 1-minute load average before and after each measurement is recorded next to the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# Ray's own processes that are named like workers: its agents, and Ray Data's actors
# (ray::_StatsActor, ray::_AutoscalingCoordinatorActor), which run whether or not tasks do.
RAY_OWN_WORKER_NAMES = ("ray::_", "ray::DashboardAgent", "ray::RuntimeEnvAgent")


def ray_process_cpu() -> dict[str, dict[int, float]]:
    """CPU seconds (user + system) of every process this driver started, by kind: the worker
    processes that run tasks, and Ray's own (raylet, GCS, dashboard, log monitor, agents, Ray
    Data's actors)."""
    import psutil

    kinds: dict[str, dict[int, float]] = {"workers": {}, "ray_system": {}}
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
            times = proc.cpu_times()
        except psutil.Error:
            continue
        task_worker = cmd.startswith("ray::") and not cmd.startswith(RAY_OWN_WORKER_NAMES)
        kinds["workers" if task_worker else "ray_system"][proc.pid] = times.user + times.system
    return kinds


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    return {kind: round(sum(t - before[kind].get(pid, 0.0) for pid, t in after[kind].items()), 3)
            for kind in after}


def median_of(runs: list[dict]) -> dict:
    """The run with the median wall time, and every run's wall time."""
    middle = sorted(runs, key=lambda r: r["wall_seconds"])[len(runs) // 2]
    return {**middle, "wall_seconds_all": [round(r["wall_seconds"], 3) for r in runs]}


def bare_loop(uris: list[str], start_together=None) -> dict:
    """The bare loop over uris, timed after its warm-up; `start_together`: a barrier to wait at
    before timing (bare_two_processes)."""
    import torch

    from pipeline.audio import AudioError, prepare_audio, read_bytes
    from pipeline.features import AudioFeatureExtractor

    torch.set_num_threads(1)            # one core, like one Ray task
    extractor = AudioFeatureExtractor()
    for uri in uris[:10]:               # warm-up: resampler kernels, mel filterbank
        extractor(prepare_audio(read_bytes(uri), uri).waveform)
    for uri in uris:                    # and the page cache: the first pass over a cold corpus
        read_bytes(uri)                 # timed 9.4 s where the next ones took 7.9
    if start_together is not None:
        start_together.wait()
    load_before = load()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    audio_seconds, frames, failed = 0.0, 0, 0
    for uri in uris:
        try:
            audio = prepare_audio(read_bytes(uri), uri)
        except AudioError:
            failed += 1
            continue
        frames += extractor(audio.waveform).shape[0]
        audio_seconds += audio.duration
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"cores": 1, "wall_seconds": wall, "cpu_seconds": cpu, "audio_seconds": audio_seconds,
            "frames": frames, "failed": failed, "realtime_per_core": audio_seconds / wall,
            "load_before": load_before, "load_after": load()}


def _bare_half(uris: list[str], barrier, results) -> None:
    """One of bare_two_processes' workers."""
    run = bare_loop(uris, start_together=barrier)
    results.put((run["wall_seconds"], run["audio_seconds"]))


def bare_two_processes(uris: list[str]) -> dict:
    """The bare loop on every other file in each of two processes, started together."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    load_before = load()
    workers = [ctx.Process(target=_bare_half, args=(uris[i::2], barrier, results)) for i in range(2)]
    for w in workers:
        w.start()
    # a worker that died raises queue.Empty, not a hang
    walls, audio = zip(*[results.get(timeout=1800) for _ in workers])
    for w in workers:
        w.join()
    return {"cores": 2, "wall_seconds": max(walls), "process_wall_seconds": list(walls), "audio_seconds": sum(audio),
            "load_before": load_before, "load_after": load()}


def planned_tasks(corpus: str, output: str, rows_per_shard: int):
    """The shard tasks and worker settings run_preprocess would use (plan stage only, no Ray)."""
    from pipeline.features import AudioFeatureExtractor
    from pipeline.preprocessing import tokenizers
    from pipeline.preprocessing.config import PreprocessConfig
    from pipeline.preprocessing.plan import plan_shards, plan_text, read_listing

    config = PreprocessConfig("librispeech", corpus, output, rows_per_shard=rows_per_shard, progress=False)
    plan, text_tokenizer = plan_text(config, *read_listing(config), lambda t: tokenizers.text_tokenizer(config, t))
    feature = AudioFeatureExtractor().config()
    settings = {"feature": feature, "min_seconds": config.min_seconds, "max_seconds": config.max_seconds,
                "audio_tokenizer": None}
    tasks = plan_shards(config, plan, {"feature": feature, "min": config.min_seconds, "max": config.max_seconds,
                                       "text": text_tokenizer.fingerprint(), "audio": None})
    return tasks, settings


def in_process(corpus: str, work: Path, rows_per_shard: int) -> dict:
    """build_shard for every planned shard, one after another in this process."""
    import torch

    from pipeline.preprocessing.shard_worker import build_shard

    torch.set_num_threads(1)
    tasks, settings = planned_tasks(corpus, str(work / "in-process"), rows_per_shard)
    build_shard({**vars(tasks[-1]), "uri": str(work / "warm.parquet")}, settings)   # warm-up
    load_before = load()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    # vars(), like the pipeline: dataclasses.asdict deep-copies every utterance (0.24-0.36 s of the 5 h corpus)
    results = [build_shard(vars(t), settings) for t in tasks]
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    audio_seconds = sum(r["seconds"] for r in results)
    phases: dict[str, float] = {}
    for r in results:
        for k, v in r["phase_seconds"].items():
            phases[k] = phases.get(k, 0.0) + v
    return {"cores": 1, "wall_seconds": wall, "cpu_seconds": cpu, "audio_seconds": audio_seconds,
            "shards": len(results), "task_phase_seconds": {k: round(v, 3) for k, v in sorted(phases.items())},
            "realtime_per_core": audio_seconds / wall, "load_before": load_before, "load_after": load()}


def pipeline_runs(corpus: str, cpus: int, work: Path, rows_per_shard: int, splits: list[str], uris: list[str],
                  repeats: int, address: str | None = None) -> tuple[list[dict], dict]:
    """The full pipeline `repeats` times on one local Ray of `cpus` CPUs, or on the cluster at
    `address` (cpus: its CPU count; its processes are not this driver's children, so their CPU
    seconds are not counted), each run into fresh outputs right after the bare loop it is compared
    with: in two processes for 2 CPUs, in one otherwise. Returns the runs and an idempotent re-run
    over the last one's output."""
    import ray

    from pipeline.preprocess import PreprocessConfig, run_preprocess
    from pipeline.ray_connection import connect

    def config(out: str, **kw) -> PreprocessConfig:
        return PreprocessConfig("librispeech", corpus, str(work / out), rows_per_shard=rows_per_shard,
                                progress=False, **kw)

    if ray.is_initialized():
        ray.shutdown()
    if address:
        connect(address)
        cpus = int(ray.cluster_resources().get("CPU", 0))
    else:
        connect(None, num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    runs = []
    try:
        # Warm-up on the smallest split: starts the worker processes and imports torch in them
        # (into fresh outputs: over complete shards it would not start a single task).
        shutil.rmtree(work / f"warm-{cpus}", ignore_errors=True)
        run_preprocess(config(f"warm-{cpus}", splits=[splits[-1]]))
        for repeat in range(repeats):
            out = f"out-{cpus}-{repeat}"
            adjacent_bare = bare_two_processes(uris) if cpus == 2 else bare_loop(uris)
            load_before, procs_before = load(), ray_process_cpu()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            summary = run_preprocess(config(out))
            wall, driver_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            runs.append(measured_run(summary, cpus, wall, driver_cpu, cpu_used(procs_before, ray_process_cpu()),
                                     load_before, adjacent_bare))
            if repeat < repeats - 1:
                shutil.rmtree(work / out, ignore_errors=True)
        rerun0 = time.perf_counter()
        again = run_preprocess(config(out))
        rerun = {"idempotent_rerun_seconds": time.perf_counter() - rerun0, "rerun_shards_written": again["shards_written"]}
        shutil.rmtree(work / out, ignore_errors=True)
    finally:
        ray.shutdown()
    return runs, rerun


def summarised(runs: list[dict], rerun: dict) -> dict:
    return {**median_of(runs), "cost_ratios_vs_adjacent_bare": [r["cost_ratio_vs_adjacent_bare"] for r in runs],
            **rerun}


def measured_run(summary: dict, cpus: int, wall: float, driver_cpu: float, procs: dict, load_before: list,
                 adjacent_bare: dict) -> dict:
    audio_seconds = summary["hours"] * 3600
    task_wall = sum(summary["task_phase_seconds"].values())
    shards_wall = summary["phase_seconds"]["shards"]
    run = {"cores": cpus, "wall_seconds": wall, "audio_seconds": audio_seconds,
            "written": summary["written"], "quarantined": summary["quarantined"], "shards": summary["shards_written"],
            "phase_seconds": summary["phase_seconds"], "task_phase_seconds": summary["task_phase_seconds"],
            "task_wall_seconds": round(task_wall, 3),
            # Tasks are single-threaded and do no blocking I/O on local files: time off a CPU is time
            # the other processes (the driver, Ray's own) took from them.
            "task_off_cpu_seconds": round(task_wall - summary["task_cpu_seconds"], 3),
            # Task slots not running shard code during the shards stage: scheduling, start-up, the tail.
            "idle_slot_seconds": round(cpus * shards_wall - task_wall, 3),
            "cpu_seconds": {"tasks": summary["task_cpu_seconds"], "driver": round(driver_cpu, 3), **procs},
            "realtime_per_core": audio_seconds / wall / cpus,
            "load_before": load_before, "load_after": load(), "adjacent_bare": adjacent_bare}
    return {**run, "cost_ratio_vs_adjacent_bare": paired_ratio(run, adjacent_bare)}


def cost(run: dict) -> float:
    """Core-seconds per audio second."""
    return run["wall_seconds"] * run["cores"] / run["audio_seconds"]


def paired_ratio(run: dict, bare: dict) -> float:
    """A run's cost against that of the bare loop run just before it."""
    return round(cost(run) / cost(bare), 4)


def cpu_cost(run: dict) -> float:
    """CPU seconds per audio second, every process counted (for the pipeline: the Ray workers, the
    driver and Ray's own processes). Other users' load inflates it far less than wall time."""
    cpu = run["cpu_seconds"]
    total = cpu if isinstance(cpu, float) else cpu["workers"] + cpu["driver"] + cpu["ray_system"]
    return total / run["audio_seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=5.0)
    parser.add_argument("--corpus", default=None, help="default: $LACT_AUDIO_HOME/bench/synth-librispeech-<hours>h")
    parser.add_argument("--rows-per-shard", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement; the median is reported")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "preprocess.json"))
    parser.add_argument("--address", default=None,
                        help="also run the pipeline on this Ray cluster (e.g. `lact-audio cluster up --workers 2`)")
    args = parser.parse_args()
    if not args.address:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from pipeline.errors import UserError
    from pipeline.readers import read_corpus
    from pipeline.records import Utterance
    from pipeline.synthetic import synthesize_corpus
    from pipeline.uri import work_home

    if args.corpus:   # a corpus the user made (e.g. `lact-audio synth --hours 5`): used as it is
        corpus = args.corpus
    else:
        corpus = str(Path(work_home()) / "bench" / f"synth-librispeech-{args.hours:g}h")
        t0 = time.perf_counter()
        try:   # same settings: nothing to do; a corpus left by an older synthesiser version is remade
            synthesize_corpus("librispeech", corpus, hours=args.hours, seed=0, progress=True)
        except UserError:
            synthesize_corpus("librispeech", corpus, hours=args.hours, seed=0, progress=True, overwrite=True)
        print(f"corpus {corpus} ready ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    records = list(read_corpus("librispeech", corpus))
    uris = [r.audio_uri for r in records if isinstance(r, Utterance)]
    splits = sorted({r.split for r in records}, key=lambda s: (not s.startswith("train"), s))

    results = {"corpus": corpus, "utterances": len(uris), "cpu_count": os.cpu_count(),
               "rows_per_shard": args.rows_per_shard,
               "note": "load_before/load_after: 1-minute load average next to each figure"}
    with tempfile.TemporaryDirectory(prefix="lact-bench-") as tmp:
        repeats = args.repeats
        print("bare loop and shards in-process, alternating ...", file=sys.stderr)
        pairs = [(bare_loop(uris), in_process(corpus, Path(tmp), args.rows_per_shard)) for _ in range(repeats)]
        results["bare"] = median_of([bare for bare, _ in pairs])
        results["in_process"] = {**median_of([run for _, run in pairs]),
                                 "cost_ratios_vs_adjacent_bare": [paired_ratio(run, bare) for bare, run in pairs]}
        print("bare loop in two processes ...", file=sys.stderr)
        results["bare_2proc"] = median_of([bare_two_processes(uris) for _ in range(repeats)])
        print("pipeline with 1 CPU and with 2 CPUs, alternating ...", file=sys.stderr)
        runs: dict[int, list[dict]] = {1: [], 2: []}
        reruns: dict[int, dict] = {}   # the last idempotent re-run on each
        try:
            for repeat in range(repeats):
                for cpus in (1, 2):
                    done, reruns[cpus] = pipeline_runs(corpus, cpus, Path(tmp), args.rows_per_shard, splits, uris, 1)
                    runs[cpus] += done
            results["pipeline"] = {str(cpus): summarised(runs[cpus], reruns[cpus]) for cpus in (1, 2)}
        except Exception as exc:  # e.g. Ray cannot start on an overloaded machine: keep what was measured
            results["pipeline"] = {str(cpus): {"error": f"{type(exc).__name__}: {exc}", "load": load(),
                                               "runs_done": len(runs[cpus])} for cpus in (1, 2)}
        if args.address:
            print(f"pipeline on the cluster at {args.address} ...", file=sys.stderr)
            run = summarised(*pipeline_runs(corpus, 0, Path(tmp), args.rows_per_shard, splits, uris, repeats,
                                            address=args.address))
            results["cluster"] = {**run, "address": args.address}

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    bare, one, two = results["bare"], results["pipeline"]["1"], results["pipeline"]["2"]
    if "error" in one or "error" in two:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps({"bare_realtime": bare["realtime_per_core"], "pipeline": results["pipeline"]}, indent=2))
        return 1

    def paired(run: dict) -> float:
        return statistics.median(run["cost_ratios_vs_adjacent_bare"])

    results["ratios"] = {
        "bare_realtime": bare["realtime_per_core"],
        "pipeline_1cpu_realtime_per_core": one["realtime_per_core"],
        "pipeline_2cpu_realtime_per_core": two["realtime_per_core"],
        "speedup_2cpu_vs_1cpu": one["wall_seconds"] / two["wall_seconds"],
        "speedup_2cpu_vs_1cpu_paired": statistics.median(
            a["wall_seconds"] / b["wall_seconds"] for a, b in zip(runs[1], runs[2])),
        # the machine's own 1 -> 2 core scaling of the bare loop, and the pipeline's share of it
        # (from the paired ratios, so both sides come from the same minutes)
        "speedup_bare_2proc_vs_bare": bare["wall_seconds"] / results["bare_2proc"]["wall_seconds"],
        "speedup_bare_2proc_vs_bare_paired": statistics.median(
            a["adjacent_bare"]["wall_seconds"] / b["adjacent_bare"]["wall_seconds"] for a, b in zip(runs[1], runs[2])),
        "speedup_2cpu_share_of_bare_2proc": paired(one) / paired(two),
        # paired: each run against the bare loop run just before it (the targets)
        "cost_ratio_in_process_vs_bare": paired(results["in_process"]),
        "cost_ratio_1cpu_vs_adjacent_bare": paired(one),
        "cost_ratio_2cpu_vs_adjacent_bare_2proc": paired(two),
        # unpaired: between the medians of measurements minutes apart
        "cost_ratio_1cpu_vs_bare": cost(one) / cost(bare),
        "cost_ratio_2cpu_vs_bare": cost(two) / cost(bare),
        "cost_ratio_2cpu_vs_bare_2proc": cost(two) / cost(results["bare_2proc"]),
        # Share of the task slots' time spent in shard code while the shards stage ran.
        "slot_occupancy_1cpu": one["task_wall_seconds"] / (1 * one["phase_seconds"]["shards"]),
        "slot_occupancy_2cpu": two["task_wall_seconds"] / (2 * two["phase_seconds"]["shards"]),
        "cpu_cost_ratio_in_process_vs_bare": cpu_cost(results["in_process"]) / cpu_cost(bare),
        "cpu_cost_ratio_1cpu_vs_bare": cpu_cost(one) / cpu_cost(bare),
        "cpu_cost_ratio_2cpu_vs_bare": cpu_cost(two) / cpu_cost(bare),
        "ray_system_share_of_2_cores": two["cpu_seconds"]["ray_system"] / (2 * two["wall_seconds"]),
        "driver_share_of_2_cores": two["cpu_seconds"]["driver"] / (2 * two["wall_seconds"]),
        "task_off_cpu_share_2cpu": two["task_off_cpu_seconds"] / two["task_wall_seconds"],
    }
    if "cluster" in results:
        c = results["cluster"]
        results["ratios"]["cluster_cpus"] = c["cores"]
        results["ratios"]["speedup_cluster_vs_1cpu"] = one["wall_seconds"] / c["wall_seconds"]
        results["ratios"]["cost_ratio_cluster_vs_adjacent_bare"] = paired(c)
    r = results["ratios"]
    results["targets"] = {
        "cost_ratio<=1.25": max(r["cost_ratio_1cpu_vs_adjacent_bare"], r["cost_ratio_2cpu_vs_adjacent_bare_2proc"]) <= 1.25,
        "speedup_2cpu>=1.8": r["speedup_2cpu_vs_1cpu"] >= 1.8,
    }
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({"ratios": r, "targets": results["targets"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
