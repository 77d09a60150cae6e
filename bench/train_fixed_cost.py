"""The fixed cost of one `lact-audio train` run: a tiny model, a few steps, local Ray already up.

    .venv/bin/python bench/train_fixed_cost.py [--runs 3] [--steps 2] [--label NAME]

Every Tune trial and every demo stage pays this cost, whatever the model. The script starts Ray
once, makes a tiny corpus once (<work dir>/bench-fixed-cost), then times `run_training` end to end
`--runs` times (the first run also pays imports and caches; it is reported apart) and splits each
run into the phases the driver records (`summary["phase_seconds"]`). Appends one record (with the
load average before and after) to bench/results/train_fixed_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TINY = ["model.config.hidden_size=32", "model.config.num_layers=1",
        "model.config.num_attention_heads=2", "model.config.num_lact_heads=2",
        "model.config.chunk_size=512", "model.config.window_size=32"]


def tiny_corpus() -> str:
    from pipeline import uri as uris
    from pipeline.preprocess import PreprocessConfig, run_preprocess
    from pipeline.synthetic.corpus import synthesize_corpus

    root = uris.join(uris.work_home(), "bench-fixed-cost")
    synthesize_corpus("librispeech", uris.join(root, "raw"), utterances_per_split=6, seed=3)
    run_preprocess(PreprocessConfig(corpus="librispeech", input_uri=uris.join(root, "raw"),
                                    output_uri=uris.join(root, "features"), progress=False))
    return uris.join(root, "features")


def one_run(data: str, steps: int, index: int) -> dict:
    from jobs.training.config import load_config
    from jobs.training.run import run_training

    cfg = load_config(str(REPO / "configs" / "demo-asr.yaml"), [
        f"data.root={data}", f"train.max_steps={steps}", f"train.eval_every={steps}",
        f"train.log_every={steps}", "data.batch_size=4", "optim.warmup_steps=1",
        "train.torch_threads=1", f"name=fixed-cost-{index}", *TINY])
    started = time.perf_counter()
    summary = run_training(cfg, echo=False)
    return {"wall_seconds": round(time.perf_counter() - started, 3),
            "phase_seconds": summary["phase_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--label", default="", help="what this measurement is of (e.g. a commit)")
    args = parser.parse_args()

    from pipeline.ray_connection import connect

    data = tiny_corpus()
    load_before = os.getloadavg()
    ray_started = time.perf_counter()
    connect(None)
    ray_seconds = time.perf_counter() - ray_started
    runs = [one_run(data, args.steps, i) for i in range(args.runs)]
    warm = runs[1:] or runs
    phases = sorted({k for r in warm for k in r["phase_seconds"]},
                    key=lambda k: list(warm[0]["phase_seconds"]).index(k)
                    if k in warm[0]["phase_seconds"] else 99)
    record = {
        "label": args.label, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "steps": args.steps,
        "ray_start_seconds": round(ray_seconds, 2),
        "first_run": runs[0],
        "warm_median_wall_seconds": statistics.median(r["wall_seconds"] for r in warm),
        "warm_median_phase_seconds": {k: statistics.median(r["phase_seconds"].get(k, 0.0)
                                                           for r in warm) for k in phases},
        "warm_runs": warm,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    out = REPO / "bench" / "results" / "train_fixed_cost.json"
    history = json.loads(out.read_text()) if out.exists() else []
    history.append(record)
    out.write_text(json.dumps(history, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("label", "first_run", "warm_median_wall_seconds",
                                             "warm_median_phase_seconds", "load_average_before",
                                             "load_average_after")}, indent=2))


if __name__ == "__main__":
    main()
