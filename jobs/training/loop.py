"""The per-worker training loop that Ray Train runs (`train_loop_per_worker`).

Each worker receives a `WorkerSpec` (built by the driver, see plan.py): the typed run config, the
model config completed from the data, the dev split, the MLflow tracking URI and run id. Every
worker runs the same number of steps (training is bounded by max_steps, epochs roll over), so the
collective calls line up.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field

import torch

from jobs.training import checkpoint as ckpt
from jobs.training.config import TrainConfig
from jobs.training.tasks import task_named


@dataclass
class WorkerSpec:
    """What a Train worker is handed: the run's typed config and what the driver resolved."""

    config: TrainConfig                   # the whole run config (OmegaConf.to_object)
    model_config: dict                    # LaCTAudioConfig fields, completed from the data
    dev_uri: str | None = None
    train_manifest: dict | None = None
    tracking_uri: str | None = None
    mlflow_run_id: str | None = None
    data_identity: dict = field(default_factory=dict)

    @property
    def task(self):
        return task_named(self.config.task)

    @property
    def architecture(self) -> str:
        return self.config.model.architecture

    def build_model(self):
        from models import LaCTAudioConfig, build_model

        return build_model(self.task.name, self.architecture,
                           LaCTAudioConfig.from_dict(self.model_config))


class Trainer:
    """The loop's state and steps; also used in one process (no Ray) by tests and the bench."""

    def __init__(self, spec: WorkerSpec, rank: int = 0, world: int = 1, distributed: bool = False):
        from jobs.training.strategies import make_strategy

        self.spec = spec
        self.cfg = spec.config
        self.task = spec.task
        self.rank, self.world, self.distributed = rank, world, distributed
        torch.manual_seed(self.cfg.train.seed + rank)
        if self.cfg.train.torch_threads:
            torch.set_num_threads(int(self.cfg.train.torch_threads))
        self.strategy = make_strategy(spec.build_model(), self.cfg, distributed)
        self.augment = self.task.augmentation(self.cfg.spec_augment)
        self.step = 0            # batches consumed (updates + skipped)
        self.skipped = 0         # batches skipped for a non-finite loss or gradient
        self.best = math.inf
        self.start_step = 0

    # ---- one batch ---------------------------------------------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:
        s = self.strategy
        with s.autocast():
            return self.task.loss(s.model, batch, s.device, s.input_dtype, self.augment)

    def all_finite(self, loss: torch.Tensor) -> bool:
        """True when the loss is finite on every worker (all skip together, or none does)."""
        flag = torch.tensor([1.0 if bool(torch.isfinite(loss.detach())) else 0.0])
        if self.distributed and self.world > 1:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return bool(flag.item() > 0)

    def train_step(self, batch: dict) -> dict:
        loss = self.loss(batch)
        self.step += 1
        if not self.all_finite(loss):
            self.strategy.skip()
            self.skipped += 1
            return {"loss": float("nan"), "applied": False}
        applied, norm = self.strategy.step(loss)
        if not applied:
            self.skipped += 1
        return {"loss": float(loss.detach()), "applied": applied, "grad_norm": norm}

    # ---- evaluation ----------------------------------------------------------------------------
    def evaluate(self, batches: list[dict], tokenizer) -> dict:
        """Each worker scores batches[rank::world]; counts are summed across workers.

        Workers run the same number of forward passes (ZeRO-3 gathers weights collectively),
        repeating a batch without counting it where the slices differ in length.
        """
        model = self.strategy.model
        mine = batches[self.rank::self.world]
        rounds = math.ceil(len(batches) / self.world) if batches else 0
        total = torch.zeros(len(self.task.count_fields), dtype=torch.float64)
        model.eval()
        for i in range(rounds):
            batch = mine[i] if i < len(mine) else batches[0]
            with self.strategy.autocast():
                counts = self.task.batch_counts(model, batch, tokenizer, self.strategy.device,
                                                self.strategy.input_dtype)
            if i < len(mine):  # a repeated batch keeps the collectives in step but does not count
                total = total + counts
        model.train()
        if self.distributed and self.world > 1:
            torch.distributed.all_reduce(total)
        return self.task.metrics(total)

    # ---- checkpoints ---------------------------------------------------------------------------
    def meta(self, metrics: dict) -> dict:
        return {"task": self.task.name, "architecture": self.spec.architecture,
                "model_config": self.spec.model_config, "step": self.step,
                "skipped": self.skipped, "best": self.best, "metrics": metrics,
                "data": self.spec.data_identity, "text_tokenizer_split": self.spec.dev_uri}

    def write_checkpoint(self, directory: str, metrics: dict) -> None:
        state = self.strategy.export_state_dict()  # collective under ZeRO-3
        files = self.strategy.save(directory, self.rank)
        if self.rank == 0:
            files += ckpt.write_model(directory, state, self.meta(metrics))
        if files:
            ckpt.write_index(directory, files, self.rank)

    def restore(self, directory: str) -> None:
        meta = ckpt.verify(directory)
        self.strategy.load(directory)
        self.step = self.start_step = int(meta["step"])
        self.skipped = int(meta["skipped"])
        self.best = float(meta["best"])


def load_dev_batches(spec: WorkerSpec) -> tuple[list[dict], object]:
    """The dev set is small: every worker loads it locally, in a fixed order (capped by
    data.max_dev_utterances), with the tokenizer that decodes its hypotheses."""
    from pipeline.loading import LocalLoader

    data = spec.config.data
    dev = LocalLoader(spec.dev_uri, batch_size=data.eval_batch_size, task=spec.task.name,
                      shuffle=False, max_audio_tokens=data.max_audio_tokens)
    batches, kept = [], 0
    for batch in dev.epoch(0):
        if data.max_dev_utterances and kept >= data.max_dev_utterances:
            break
        batches.append(batch)
        kept += len(batch["utt_ids"])
    return batches, spec.task.tokenizer(dev.manifest, spec.dev_uri)


def train_loop_per_worker(spec: WorkerSpec) -> None:
    """Ray Train entry point."""
    import ray.train

    from models.lact_layer import fast_weight_changes
    from pipeline.loading import iter_worker_batches

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    trainer = Trainer(spec, rank, world, distributed=True)
    cfg = trainer.cfg
    restored = ray.train.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as directory:
            trainer.restore(directory)

    tracker = None
    if rank == 0 and spec.mlflow_run_id:
        from jobs.training.tracking import StepLogger

        tracker = StepLogger(spec.tracking_uri, spec.mlflow_run_id)
        if restored is not None:
            tracker.log({"resumed_from_step": trainer.step}, trainer.step)

    dev_batches, tokenizer = load_dev_batches(spec)
    shard = ray.train.get_dataset_shard("train")
    max_steps, log_every, eval_every = cfg.train.max_steps, cfg.train.log_every, cfg.train.eval_every
    window_audio, window_start, window_losses, window_steps = 0.0, time.perf_counter(), [], 0
    epoch = trainer.step  # a fresh epoch seed after a restart, so data differs from the last try
    while trainer.step < max_steps:
        for batch in iter_worker_batches(
                shard, spec.train_manifest, cfg.data.batch_size, task=trainer.task.name,
                seed=cfg.train.seed, epoch=epoch, rank=rank, pool_size=cfg.data.pool_size,
                max_audio_tokens=cfg.data.max_audio_tokens):
            out = trainer.train_step(batch)
            window_audio += float(batch["durations"].sum())
            window_steps += 1
            if out["applied"]:
                window_losses.append(out["loss"])
            step = trainer.step
            if step % log_every == 0 or step == max_steps:
                elapsed = time.perf_counter() - window_start
                totals = torch.tensor([window_audio, elapsed])
                if world > 1:
                    torch.distributed.all_reduce(totals)
                audio_per_s = float(totals[0]) / max(float(totals[1]) / world, 1e-9)
                if tracker is not None:
                    tracker.log({"train_loss": sum(window_losses) / max(len(window_losses), 1),
                                 "lr": trainer.strategy.lr, "audio_seconds_per_second": audio_per_s,
                                 "steps_per_second": window_steps / max(elapsed, 1e-9),
                                 "skipped_batches": trainer.skipped}, step)
                window_audio, window_start, window_losses, window_steps = 0.0, time.perf_counter(), [], 0
            if step % eval_every == 0 or step == max_steps:
                metrics = trainer.evaluate(dev_batches, tokenizer)
                score = trainer.task.score(metrics)
                trainer.best = min(trainer.best, score)
                report = {f"dev_{k}": v for k, v in metrics.items() if k not in ("greedy",)}
                report.update(dev_score=score, step=step, skipped_batches=trainer.skipped,
                              start_step=trainer.start_step, best_dev_score=trainer.best)
                if tracker is not None:
                    # how far the dev pass moved each layer's fast weights (LaCT models only)
                    changes = {f"fast_weight_change_layer{i}": c for i, c in
                               enumerate(fast_weight_changes(trainer.strategy.module))}
                    tracker.log({k: v for k, v in report.items()
                                 if k.startswith("dev_") and isinstance(v, float)} | changes, step)
                with tempfile.TemporaryDirectory(prefix="lact-ckpt-") as directory:
                    trainer.write_checkpoint(directory, report)
                    has_files = bool(os.listdir(directory))
                    ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(directory)
                                     if has_files else None)
                # evaluation time is not training throughput
                window_audio, window_start, window_losses, window_steps = 0.0, time.perf_counter(), [], 0
            if trainer.step >= max_steps:
                break
        epoch += 1
