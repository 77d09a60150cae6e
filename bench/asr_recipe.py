"""Quality of one ASR recipe without Ray: the training loop of `lact-audio train` (jobs/training/
loop.py, the same Trainer, schedule and checkpoint-free) run in this process on preprocessed
features, then greedy CER/WER on dev and test. For comparing recipes quickly and side by side
(two of these with train.torch_threads=1 use both cores of a 2-core machine).

    .venv/bin/python bench/asr_recipe.py --data runs/demo/features --name lact-1000 \\
        train.max_steps=1000 model.architecture=lact

Config: configs/demo-asr.yaml plus the key=value overrides. Appends one JSON line to
bench/results/asr_recipe.jsonl: name, overrides, dev/test CER and WER, test CER with every
fast-weight update skipped, the mean fast-weight change and the CER by position in a test speaker's
session with and without carried state (LaCT), dev CER every 200 steps,
training seconds (evaluations included) and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    from omegaconf import OmegaConf

    from jobs.training.config import load_config, session_config
    from jobs.tasks.scoring import evaluate_split
    from jobs.training.loop import Trainer, WorkerSpec
    from jobs.training.plan import model_config
    from models.lact_layer import fast_weight_changes, skip_fast_weight_updates
    from pipeline.loading import LocalLoader

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="preprocessed features root")
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "asr_recipe.jsonl"))
    parser.add_argument("overrides", nargs="*", help="config key=value")
    args = parser.parse_args()

    cfg = load_config(str(REPO / "configs" / "demo-asr.yaml"), [f"data.root={args.data}", *args.overrides])
    root = cfg.data.root
    train = LocalLoader(f"{root}/{cfg.data.train}", batch_size=cfg.data.batch_size,
                        shuffle=True, pool_size=cfg.data.pool_size, seed=cfg.train.seed,
                        sessions=session_config(cfg.data))
    trainer = Trainer(WorkerSpec(OmegaConf.to_object(cfg), model_config(cfg, train.manifest)))

    def score(split: str) -> dict:
        return evaluate_split(trainer.strategy.model, cfg, f"{root}/{split}")

    started, epoch, history = time.perf_counter(), 0, {}
    while trainer.step < cfg.train.max_steps:
        for batch in train.epoch(epoch):
            trainer.train_step(batch)
            if trainer.step % 100 == 0:
                print(f"step {trainer.step} {time.perf_counter() - started:.0f} s", flush=True)
            if trainer.step % 200 == 0 and trainer.step < cfg.train.max_steps:
                history[trainer.step] = round(score(cfg.data.dev)["cer"], 4)
            if trainer.step >= cfg.train.max_steps:
                break
        epoch += 1
    seconds = time.perf_counter() - started
    dev, test = score(cfg.data.dev), score(cfg.data.test)
    model = trainer.strategy.model
    changes = fast_weight_changes(model)   # of the test pass's last batch
    with skip_fast_weight_updates(model):  # the same model without its test-time updates
        frozen = score(cfg.data.test) if changes else {"cer": None}
    adapted = None
    if changes:   # CER by position in a test speaker's session, state carried or fresh
        from jobs.evaluation.adaptation import chained_state
        from jobs.evaluation.data import read_split
        from jobs.tasks import task_named

        split = read_split(f"{root}/{cfg.data.test}")
        tokenizer = task_named("asr").tokenizer(split.manifest, f"{root}/{cfg.data.test}")
        model.eval()
        adapted = chained_state(model, split, tokenizer, counts=(0,))   # measured here on purpose
    result = {"name": args.name, "data": root, "overrides": args.overrides,
              "dev_cer": dev["cer"], "dev_wer": dev["wer"], "test_cer": test["cer"],
              "test_wer": test["wer"], "test_cer_without_updates": frozen["cer"],
              "fast_weight_change": sum(changes) / len(changes) if changes else None,
              "adaptation": adapted and {k: adapted[k] for k in ("fresh_cer", "carried_cer", "by_position")},
              "dev_cer_history": history, "steps": trainer.step,
              "train_seconds": round(seconds, 1), "load_average": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
