"""A Ray Train TorchTrainer built from a run plan and a Ray Train run config, and its fit.

`lact-audio train` uses `train_run_config(plan)`; a Tune trial adds its report callback to the
same config, so both run exactly the same trainer.
"""

from __future__ import annotations

import dataclasses
import os
import time

from jobs.training.loop import WorkerSpec, train_loop_per_worker
from jobs.training.phases import Phases
from jobs.training.plan import RunPlan
from pipeline.loading import ray_dataset


def train_run_config(plan: RunPlan, callbacks: list | None = None):
    """Where the run's checkpoints go, how many worker failures it survives, which checkpoint
    is the best (lowest dev score)."""
    import ray.train

    return ray.train.RunConfig(
        name=plan.run_name, storage_path=plan.storage, callbacks=callbacks or None,
        failure_config=ray.train.FailureConfig(max_failures=plan.cfg.train.max_failures),
        # num_to_keep=1 keeps the best; Ray never deletes the latest, so both stay.
        checkpoint_config=ray.train.CheckpointConfig(
            num_to_keep=1, checkpoint_score_attribute="dev_score", checkpoint_score_order="min"))


def build_trainer(plan: RunPlan, spec: WorkerSpec, run_config):
    import ray
    import ray.data
    import ray.train
    from ray.train.torch import TorchTrainer

    # Ray Train's controller notices a finished worker group on its next health check (default
    # every 2 s): a run would idle up to that long after its last step. Ray forwards this
    # variable from the driver to the controller.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    # Train workers log their own progress; Ray Data's bars would flood the terminal.
    ray.data.DataContext.get_current().enable_progress_bars = False
    # with data.sessions: one row per planned session (grouped and joined by Ray Data)
    train = ray_dataset(plan.splits["train"].uri, plan.task.content, sessions=plan.sessions,
                        seed=plan.cfg.train.seed)
    if plan.cfg.data.materialize:  # read the shards (and join the sessions) once, not every epoch
        train = train.materialize()
    if isinstance(spec.init_weights, dict):  # once into the object store, not into every copy of the spec
        spec = dataclasses.replace(spec, init_weights=ray.put(spec.init_weights))
    t = plan.cfg.train
    return TorchTrainer(
        train_loop_per_worker, train_loop_config=spec,
        scaling_config=ray.train.ScalingConfig(
            num_workers=t.num_workers, use_gpu=t.use_gpu,
            resources_per_worker={"CPU": t.cpus_per_worker}),
        run_config=run_config, datasets={"train": train})


def fit(trainer, spec: WorkerSpec, run_name: str, phases: Phases):
    """(result, wall seconds); a failed run raises. The run's step logger ends with it."""
    import ray

    started = time.time()
    try:
        result = trainer.fit()
    finally:  # the logger actor ends with the run, also when fit() raises
        if spec.step_logger is not None:
            ray.kill(spec.step_logger)
    seconds = time.time() - started
    phases.split_fit(started, result.metrics)
    if result.error is not None:
        raise RuntimeError(f"training run {run_name} failed: {result.error}")
    return result, seconds
