"""Throughput of batch transcription on Ray Data (files/s and audio seconds/s) with 1 and 2 actors.

A synthetic folder of --files recordings of --seconds each is transcribed with `run_batch` (the
engine of `lact-audio transcribe --input --output`) by the small demo-size LaCT model (untrained,
bench/inference_models.py) unless --model is given. Each actor count runs on a fresh output (nothing
to resume) in one local Ray with --ray-cpus logical CPUs; the time includes starting the actors
and loading the model in each, as a user's run does, and is also reported without the first
batch's wait (time to the first finished part). Load average before and after is recorded.

    .venv/bin/python bench/transcribe_batch.py                       # 64 files x 15 s, 1 and 2 actors
    .venv/bin/python bench/transcribe_batch.py --files 4 --seconds 2 --out /tmp/b.json   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--ray-cpus", type=int, default=4)
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "transcribe_batch.json"))
    args = parser.parse_args()

    import ray
    import soundfile as sf

    from bench.inference_models import bench_checkpoint, bench_header, bench_split, synthetic_speech, write_results
    from jobs.inference.batch import BatchConfig, parts_dir, run_batch
    from pipeline.ray_connection import connect

    results = bench_header("transcribe_batch", files=args.files, seconds_per_file=args.seconds,
                           batch_size=args.batch_size, ray_cpus=args.ray_cpus, runs=[])
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        os.environ.setdefault("LACT_AUDIO_HOME", os.path.join(tmp, "home"))
        model = args.model or bench_checkpoint(tmp, "lact", bench_split(tmp))
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for i in range(args.files):
            sf.write(str(corpus / f"utt{i:05d}.wav"), synthetic_speech(args.seconds, seed=i), 16000, subtype="PCM_16")
        # one Ray for every actor count: each dataset starts its own actor pool (a Ray restarted in the
        # same process can take minutes to register its node on a loaded machine)
        connect(None, num_cpus=args.ray_cpus, log_to_driver=False)
        for actors in args.actors:
            output = os.path.join(tmp, f"out-{actors}", "transcripts.parquet")
            load_before = os.getloadavg()
            start = time.perf_counter()
            summary = run_batch(BatchConfig(model=model, input=str(corpus), output=output, num_actors=actors,
                                            batch_size=args.batch_size, progress=False))
            wall = time.perf_counter() - start
            parts = sorted(Path(parts_dir(output)).glob("part-*.parquet"), key=lambda p: p.stat().st_mtime)
            first_part = parts[0].stat().st_mtime if parts else None
            last_part = parts[-1].stat().st_mtime if parts else None
            run = {"actors": actors, "wall_s": round(wall, 2), "files_per_s": round(args.files / wall, 3),
                   "audio_s_per_s": round(args.files * args.seconds / wall, 2), "failed": summary.failed,
                   "first_to_last_part_s": round(last_part - first_part, 2) if parts else None,
                   "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
            if parts and len(parts) > 1:
                run["steady_files_per_s"] = round((args.files - args.batch_size) / max(1e-9, last_part - first_part), 3)
            results["runs"].append(run)
            print(json.dumps(run), file=sys.stderr)
        ray.shutdown()
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
