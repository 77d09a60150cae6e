"""Overhead of `lact-audio train` (Ray Train, 1 worker, Ray Data shards, MLflow, checkpoints)
against a plain PyTorch loop in this script: same model, data, batch size and thread count.

    .venv/bin/python bench/train_overhead.py [--data FEATURES_ROOT] [--steps 60]

Writes bench/results/train_overhead.json: steps/s of both (steady state, first window dropped),
and overhead = 1 - train / plain (target <= 0.10). The plain loop runs before and after the
`lact-audio train` run and their mean is the reference: a shared 2-core VM drifts in speed by
tens of percent over minutes, which one plain run beside one train run would mistake for
overhead. Without --data it uses the demo's features (<work dir>/demo/features) or synthesises
a small corpus first.
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

MODEL = ["model.config.hidden_size=128", "model.config.num_layers=3"]


def ensure_data(data: str | None) -> str:
    from pipeline import uri as uris

    if data:
        return uris.absolute(data)
    demo = uris.join(uris.work_home(), "demo", "features")
    if uris.exists(uris.join(demo, "train-clean-100", "manifest.json")):
        return demo
    from pipeline.preprocess import PreprocessConfig, run_preprocess
    from pipeline.synthetic.corpus import synthesize_corpus

    root = uris.join(uris.work_home(), "bench-train")
    synthesize_corpus("librispeech", uris.join(root, "raw"), hours=0.05, seed=0)
    run_preprocess(PreprocessConfig(corpus="librispeech", input_uri=uris.join(root, "raw"),
                                    output_uri=uris.join(root, "features"), progress=False))
    return uris.join(root, "features")


def through_train(data: str, steps: int, window: int, batch: int, threads: int) -> dict:
    from mlflow.tracking import MlflowClient

    from jobs.training.config import load_config
    from jobs.training.run import run_training

    cfg = load_config(str(REPO / "configs" / "demo-asr.yaml"), [
        f"data.root={data}", f"train.max_steps={steps}", f"train.log_every={window}",
        f"train.eval_every={steps}", f"data.batch_size={batch}", "data.max_dev_utterances=8",
        f"train.cpus_per_worker={threads}", f"train.torch_threads={threads}", "name=bench-overhead",
        "tracking.register=false", "data.test=null", *MODEL])
    summary = run_training(cfg, echo=False)
    history = sorted(MlflowClient().get_metric_history(summary["mlflow_run_id"], "steps_per_second"),
                     key=lambda m: m.step)
    rates = [m.value for m in history][1:]  # first window: start-up, compilation, caches
    return {"steps_per_second": statistics.median(rates), "windows": rates,
            "wall_seconds": summary["train_seconds"], "parameters": summary["parameters"]}


def plain_loop(data: str, steps: int, window: int, batch: int, threads: int) -> dict:
    import torch

    from jobs.tasks.spec_augment import SpecAugment
    from jobs.tasks.asr import ctc_loss
    from jobs.training.plan import model_config
    from jobs.training.config import load_config
    from models import ASR_MODELS, LaCTAudioConfig, build_model
    from pipeline.loading import LocalLoader

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = load_config(str(REPO / "configs" / "demo-asr.yaml"), [f"data.root={data}", *MODEL])
    loader = LocalLoader(os.path.join(data, "train-clean-100"), batch_size=batch, pool_size=256,
                         audio_tokens=False)
    values = model_config(cfg, loader.manifest)
    model = build_model(ASR_MODELS, "lact", LaCTAudioConfig.from_dict(values))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    sa = cfg.spec_augment  # as `lact-audio train` does: masks only when the config enables them
    augment = (SpecAugment(sa.freq_masks, sa.freq_width, sa.time_masks, sa.time_width, sa.time_ratio)
               if sa.enabled else (lambda features: features))
    model.train()
    step, epoch, stamps = 0, 0, []
    while step < steps:
        for b in loader.epoch(epoch):
            logits, lengths = model(augment(b["features"]), b["feature_lengths"])
            loss = ctc_loss(logits, lengths, b["tokens"], b["token_lengths"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if step % window == 0:
                stamps.append(time.perf_counter())
            if step >= steps:
                break
        epoch += 1
    rates = [window / (b - a) for a, b in zip(stamps, stamps[1:])]
    return {"steps_per_second": statistics.median(rates), "windows": rates}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "train_overhead.json"))
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    data = ensure_data(args.data)
    before = plain_loop(data, args.steps, args.window, args.batch_size, args.threads)
    train = through_train(data, args.steps, args.window, args.batch_size, args.threads)
    after = plain_loop(data, args.steps, args.window, args.batch_size, args.threads)
    plain_rate = (before["steps_per_second"] + after["steps_per_second"]) / 2
    result = {
        "data": data, "steps": args.steps, "batch_size": args.batch_size, "threads": args.threads,
        "plain_steps_per_second": plain_rate,
        "train_steps_per_second": train["steps_per_second"],
        "overhead": 1.0 - train["steps_per_second"] / plain_rate,
        "target_overhead": 0.10, "plain_before": before, "train": train, "plain_after": after,
        "cpu_count": os.cpu_count(), "load_average_after": os.getloadavg(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("plain_before", "train", "plain_after")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
