"""The per-worker training loop that Ray Train runs (`train_loop_per_worker`).

Each worker receives a `WorkerSpec` (built by the driver, see plan.py): the typed run config, the
model config completed from the data, the dev split, the MLflow tracking URI and run id. Every
worker runs the same number of steps (training is bounded by max_steps, epochs roll over), so the
collective calls line up.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import torch

from jobs.runs import checkpoint as ckpt
from jobs.tasks import task_named
from jobs.training.config import TrainConfig
from jobs.training.strategies import make_strategy
from models import LaCTAudioConfig, build_model
from models.lact_layer import memory_stats, track_memory
from pipeline.loading import LocalLoader, iter_worker_batches


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
    step_logger: object = None            # rank 0's MLflow logger actor (tracking.start_step_logger)
    init_weights: object = None           # train.init_from's state dict, or a Ray ObjectRef to it

    @cached_property
    def task(self):
        return task_named(self.config.task)

    @property
    def architecture(self) -> str:
        return self.config.model.architecture

    def build_model(self):
        return build_model(self.task.models, self.architecture,
                           LaCTAudioConfig.from_dict(self.model_config))

    def initial_model(self):
        """The model training starts from: fresh, or with train.init_from's weights."""
        model = self.build_model()
        weights = self.init_weights
        if weights is not None:
            if not isinstance(weights, dict):  # a Ray ObjectRef (launch.build_trainer)
                import ray

                weights = ray.get(weights)
            model.load_state_dict(weights)
        return model


class Trainer:
    """The loop's state and steps; also used in one process (no Ray) by tests and the bench."""

    def __init__(self, spec: WorkerSpec, rank: int = 0, world: int = 1, distributed: bool = False):
        self.spec = spec
        self.cfg = spec.config
        self.task = spec.task
        self.rank, self.world, self.distributed = rank, world, distributed
        torch.manual_seed(self.cfg.train.seed + rank)
        if self.cfg.train.torch_threads:
            torch.set_num_threads(int(self.cfg.train.torch_threads))
        self.strategy = make_strategy(spec.initial_model(), self.cfg, distributed)
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


def checkpoint_step(directory: str) -> int:
    """The step a checkpoint was written at (its integrity is checked when it is restored)."""
    with open(os.path.join(directory, ckpt.META_FILE)) as f:
        return int(json.load(f)["step"])


def batch_stream(spec: WorkerSpec, rank: int, first_epoch: int) -> Iterator[dict]:
    """This worker's training batches from its Ray Data shard, epoch after epoch (seeded by epoch
    and rank); with data.sessions the shard's rows are sessions already (launch.build_trainer)."""
    import ray.train

    shard = ray.train.get_dataset_shard("train")
    cfg, epoch = spec.config, first_epoch
    while True:
        yield from iter_worker_batches(
            shard, spec.train_manifest, cfg.data.batch_size, content=spec.task.content,
            seed=cfg.train.seed, epoch=epoch, rank=rank, pool_size=cfg.data.pool_size,
            max_audio_tokens=cfg.data.max_audio_tokens)
        epoch += 1


def dev_set(spec: WorkerSpec) -> tuple[list[dict], object]:
    return dev_batches(spec.dev_uri, spec.config.data, spec.task)


def dev_batches(dev_uri: str, data, task) -> tuple[list[dict], object]:
    """The dev batches every worker scores (small: loaded locally, in a fixed order, capped by
    data.max_dev_utterances, audio tokens cropped as in training) and the task's tokenizer that
    decodes them; a study's per-utterance dev units (jobs/tuning/dev_units.py) score the same."""
    dev = LocalLoader(dev_uri, batch_size=data.eval_batch_size, content=task.content,
                      shuffle=False, max_audio_tokens=data.max_audio_tokens)
    batches, kept = [], 0
    for batch in dev.epoch(0):
        if data.max_dev_utterances and kept >= data.max_dev_utterances:
            break
        batches.append(batch)
        kept += len(batch["utt_ids"])
    return batches, task.tokenizer(dev.manifest, dev_uri)


def train_loop_per_worker(spec: WorkerSpec) -> None:
    """Ray Train entry point."""
    import ray.train

    loop_entered_at = time.time()  # phase timings of the run (phases.Phases)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    # Rank 0 sends its metrics to the run's MLflow logger actor (tracking.start_step_logger).
    tracker = spec.step_logger if rank == 0 else None
    trainer, batches, dev = start_worker(spec, rank, world, tracker)
    if trainer.step >= trainer.cfg.train.max_steps:  # restored from the final checkpoint
        return
    run_steps(trainer, batches, dev, world, tracker, loop_entered_at)
    if tracker is not None:  # every metric is written before the worker exits
        ray.get(tracker.log.remote({}, trainer.step))


def start_worker(spec: WorkerSpec, rank: int, world: int, tracker) -> tuple[Trainer, Iterator[dict], tuple]:
    """The worker's Trainer (restored from Ray Train's checkpoint after a restart), its batches
    and the dev set (batches, tokenizer)."""
    import ray.train

    restored = ray.train.get_checkpoint()
    # Building the model and optimizer is seconds of imports (torch's compiler stack); starting
    # the Ray Data shard is mostly waiting on other processes: start it in the background.
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lact-first-batch")
    with restored.as_directory() if restored else contextlib.nullcontext() as directory:
        # a fresh epoch seed after a restart, so the data differs from the last try
        first_epoch = checkpoint_step(directory) if directory else 0
        stream = batch_stream(spec, rank, first_epoch)
        first_batch = background.submit(next, stream)
        trainer = Trainer(spec, rank, world, distributed=True)
        if directory:
            trainer.restore(directory)
    dev = dev_set(spec)
    if tracker is not None and restored is not None:
        tracker.log.remote({"resumed_from_step": trainer.step}, trainer.step)
    batches = itertools.chain([first_batch.result()], stream)
    background.shutdown()
    return trainer, batches, dev


class ThroughputWindow:
    """What the steps since the last log line or evaluation did: audio seconds, applied losses,
    steps and wall time (evaluation time is not training throughput)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.audio, self.start, self.losses, self.steps = 0.0, time.perf_counter(), [], 0

    def add(self, batch: dict, out: dict) -> None:
        self.audio += float(batch["durations"].sum())
        self.steps += 1
        if out["applied"]:
            self.losses.append(out["loss"])

    def rates(self, world: int) -> dict:
        """Mean loss, audio seconds per second over all workers (a collective: every worker
        calls it), this worker's steps per second."""
        elapsed = time.perf_counter() - self.start
        totals = torch.tensor([self.audio, elapsed])
        if world > 1:
            torch.distributed.all_reduce(totals)
        return {"train_loss": sum(self.losses) / max(len(self.losses), 1),
                "audio_seconds_per_second": float(totals[0]) / max(float(totals[1]) / world, 1e-9),
                "steps_per_second": self.steps / max(elapsed, 1e-9)}


def run_steps(trainer: Trainer, batches: Iterator[dict], dev: tuple, world: int, tracker,
              loop_entered_at: float) -> None:
    """Train to max_steps: log every log_every steps, evaluate, checkpoint and report to Ray
    Train every eval_every steps (and at the last)."""
    max_steps, log_every, eval_every = (trainer.cfg.train.max_steps, trainer.cfg.train.log_every,
                                        trainer.cfg.train.eval_every)
    window = ThroughputWindow()
    first_step_at = None
    module = trainer.strategy.module
    for batch in batches:
        first_step_at = first_step_at or time.time()
        # LaCT layers record their fast-weight change and fast-branch share on logged steps only
        logged_next = (trainer.step + 1) % log_every == 0 or trainer.step + 1 == max_steps
        track_memory(module, tracker is not None and logged_next)
        window.add(batch, trainer.train_step(batch))
        step = trainer.step
        logged = step % log_every == 0 or step == max_steps
        evaluated = step % eval_every == 0 or step == max_steps
        if logged:
            rates = window.rates(world)
            if tracker is not None:
                tracker.log.remote({"train_loss": rates["train_loss"], "lr": trainer.strategy.lr,
                                    "audio_seconds_per_second": rates["audio_seconds_per_second"],
                                    "steps_per_second": rates["steps_per_second"],
                                    "skipped_batches": trainer.skipped} | memory_stats(module), step)
        if evaluated:
            evaluate_and_report(trainer, dev, tracker, {"loop_entered_at": loop_entered_at,
                                                        "first_step_at": first_step_at})
        if logged or evaluated:
            window.reset()
        if trainer.step >= max_steps:
            break


def evaluate_and_report(trainer: Trainer, dev: tuple, tracker, timing: dict) -> None:
    """Score the dev set, log it, write a checkpoint and report both to Ray Train."""
    import ray.train

    step, module = trainer.step, trainer.strategy.module
    metrics = trainer.evaluate(*dev)
    score = trainer.task.score(metrics)
    trainer.best = min(trainer.best, score)
    report = {f"dev_{k}": v for k, v in metrics.items() if k not in ("greedy",)}
    report.update(dev_score=score, step=step, skipped_batches=trainer.skipped,
                  start_step=trainer.start_step, best_dev_score=trainer.best, **timing)
    if tracker is not None:
        # the dev pass's fast-weight change and fast-branch share per layer (LaCT only)
        memory = {f"dev_{k}": v for k, v in memory_stats(module).items()}
        tracker.log.remote({k: v for k, v in report.items()
                            if k.startswith("dev_") and isinstance(v, float)} | memory, step)
    with tempfile.TemporaryDirectory(prefix="lact-ckpt-") as directory:
        trainer.write_checkpoint(directory, report)
        has_files = bool(os.listdir(directory))
        report["last_report_at"] = time.time()
        ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(directory)
                         if has_files else None)
