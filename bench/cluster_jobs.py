"""Where the time of the cluster integration test goes: the same steps as tests/test_cluster_jobs.py,
each timed with the load average beside it.

    .venv/bin/python bench/cluster_jobs.py [--workers 1] [--label NAME]

Steps: `lact-audio cluster up --workers N --s3`; a 3-utterances-a-split corpus synthesised onto its
S3 server; `submit preprocess --wait`; `submit train --wait` (2 steps of a tiny model); `cluster down`.
Inside each job, the seconds until the command started (Ray sets up the job's runtime_env) and until
it joined the cluster are read from the job's log. Appends one record to bench/results/cluster_jobs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LACT = str(Path(sys.executable).parent / "lact-audio")
TINY_TRAIN = ["data.batch_size=4", "train.max_steps=2", "train.eval_every=2", "train.log_every=1",
              "optim.warmup_steps=1", "train.cpus_per_worker=1", "train.torch_threads=1",
              "model.config.hidden_size=32", "model.config.num_layers=1", "model.config.num_attention_heads=2",
              "model.config.num_lact_heads=2", "model.config.chunk_size=512", "model.config.window_size=32"]
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def step(name: str, args: list[str], env: dict, record: dict) -> subprocess.CompletedProcess:
    before, start = load(), time.time()
    done = subprocess.run([LACT, *args], env=env, capture_output=True, text=True, cwd=REPO)
    record[name] = {"seconds": round(time.time() - start, 1), "load_before": before, "load_after": load(),
                    "rc": done.returncode}
    if done.returncode != 0:
        sys.exit(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def job_phases(log: str, submitted: float) -> dict:
    """Seconds from submission to the entrypoint's start and to its joining the cluster."""
    def at(marker: str) -> float | None:
        for line in log.splitlines():
            if marker in line and STAMP.match(line):
                return time.mktime(time.strptime(STAMP.match(line).group(1)[:19], "%Y-%m-%d %H:%M:%S"))
        return None

    started, joined = at("Runtime env is setting up"), at("Connected to Ray cluster")
    return {"runtime_env_setup_at_s": started and round(started - submitted, 1),
            "joined_cluster_at_s": joined and round(joined - submitted, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="bench-cluster-")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_ADDRESS", "RAY_API_SERVER", "RAY_AUTH", "MLFLOW_", "AWS_"))}
    env["LACT_AUDIO_HOME"] = home
    record: dict = {"label": args.label, "workers": args.workers, "cores": os.cpu_count(), "steps": {}}
    steps = record["steps"]
    total = time.time()
    up = step("cluster_up", ["cluster", "up", "--workers", str(args.workers), "--s3"], env, steps)
    job_env = {**env, **dict(line.removeprefix("export ").split("=", 1) for line in up.stdout.splitlines()
                             if line.startswith("export "))}
    try:
        step("synth", ["synth", "--layout", "librispeech", "--out", "s3://lact-audio/raw",
                       "--utterances-per-split", "3"], job_env, steps)
        for name, command in (
                ("submit_preprocess", ["preprocess", "--corpus", "librispeech", "--input", "s3://lact-audio/raw",
                                       "--output", "s3://lact-audio/features", "--audio-tokens", "mulaw", "--quiet"]),
                ("submit_train", ["train", "--config", "configs/demo-asr.yaml", "data.root=s3://lact-audio/features",
                                  "output=s3://lact-audio/train", "tracking.experiment=bench", *TINY_TRAIN])):
            submitted = time.time()
            done = step(name, ["submit", *command, "--wait"], job_env, steps)
            steps[name].update(job_phases(done.stdout, submitted))
    finally:
        step("cluster_down", ["cluster", "down"], env, steps)
    record["total_seconds"] = round(time.time() - total, 1)
    out = REPO / "bench" / "results" / "cluster_jobs.json"
    out.parent.mkdir(exist_ok=True)
    history = json.loads(out.read_text()) if out.exists() else []
    history.append(record)
    out.write_text(json.dumps(history, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
