"""The driver of `lact-audio train`: validate everything up front, start the Ray Train run, then
log, register and summarise its result."""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from datetime import datetime, timezone

from omegaconf import DictConfig, OmegaConf

from pipeline import uri as uris
from pipeline.errors import UserError

RUN_FILE = "lact_run.json"


def data_splits(cfg: DictConfig) -> dict:
    from pipeline.loading import open_split

    root = uris.absolute(cfg.data.root)
    uris.require_exists(root, "config key 'data.root'")
    splits = {}
    for key in ("train", "dev", "test"):
        name = cfg.data[key]
        if name is None:
            continue
        uri = uris.join(root, name)
        if not uris.exists(uri):
            raise UserError(f"config key 'data.{key}': split {name!r} not found under {root}")
        splits[key] = open_split(uri)
    return splits


def model_config(cfg: DictConfig, train_manifest: dict) -> dict:
    """The model section completed from the data (vocab sizes, mel bins) and validated."""
    from models import LaCTAudioConfig

    values = dict(OmegaConf.to_container(cfg.model.config, resolve=True))
    values["mel_bins"] = int(train_manifest["feature"]["n_mels"])
    values["vocab_size"] = int(train_manifest["text_tokenizer"]["vocab_size"])
    audio_tok = train_manifest.get("audio_tokenizer")
    if audio_tok:
        values["audio_vocab_size"] = int(audio_tok["vocab_size"])
    elif cfg.task == "generation":
        raise UserError("config key 'task': generation needs audio tokens; preprocess with "
                        "--audio-tokens mulaw|kmeans")
    values["gradient_checkpointing"] = bool(cfg.train.gradient_checkpointing)
    try:
        LaCTAudioConfig.from_dict(values)
    except (ValueError, TypeError) as exc:
        raise UserError(f"config key 'model.config': {exc}") from exc
    return values


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def pick_run_dir(storage: str, name: str, resume: bool) -> tuple[str, dict | None]:
    """A fresh `<name>-<time>-<id>`, or with resume the newest earlier run of that name."""
    if resume:
        fs, path = uris.filesystem(storage)
        fs.invalidate_cache()
        candidates = []
        for entry in fs.ls(path, detail=False) if fs.exists(path) else []:
            base = entry.rstrip("/").rsplit("/", 1)[-1]
            if base.startswith(f"{name}-") and fs.exists(f"{entry.rstrip('/')}/{RUN_FILE}"):
                candidates.append(base)
        if not candidates:
            raise UserError(f"--resume: no earlier run named {name!r} under {storage}")
        run_name = sorted(candidates)[-1]
        with fs.open(f"{path.rstrip('/')}/{run_name}/{RUN_FILE}") as f:
            return run_name, json.load(f)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{uuid.uuid4().hex[:4]}", None


def write_json(uri: str, data: dict) -> None:
    """Write-then-rename where the filesystem allows it (local); a single PUT on S3 is atomic."""
    fs, path = uris.filesystem(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    text = json.dumps(data, indent=2, default=str)
    if uris.is_remote(uri):
        with fs.open(path, "w") as f:
            f.write(text)
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        # A busy machine can take over a minute to register the raylet (Ray's default is 30 s).
        os.environ.setdefault("RAY_raylet_start_wait_time_s", "240")
        # More logical CPUs than cores: Train workers would otherwise leave Ray Data none.
        ray.init(num_cpus=max(4, 2 * (os.cpu_count() or 1)))


def run_training(cfg: DictConfig, resume: bool = False, address: str | None = None,
                 echo: bool = True) -> dict:
    """Train per `cfg`; returns the summary (also written to <run dir>/summary.json)."""
    import mlflow
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    from jobs.training import tracking
    from jobs.training.config import flatten
    from jobs.training.loop import build, train_loop_per_worker
    from jobs.training.model_io import load_checkpoint_dir
    from pipeline.loading import ray_dataset

    phases = Phases()
    # ---- everything a run needs is checked before any worker starts --------------------------
    splits = data_splits(cfg)
    train, dev = splits["train"], splits["dev"]
    model_values = model_config(cfg, train.manifest)
    arch = cfg.model.architecture
    payload_model = {"task": cfg.task, "architecture": arch, "model_config": model_values}
    params = count_parameters(build(payload_model))
    storage = uris.absolute(cfg.output or uris.join(uris.work_home(), "train"))
    uris.ensure_writable(storage, "training output (config key 'output')")
    run_name, previous = pick_run_dir(storage, cfg.name, resume)
    run_uri = uris.join(storage, run_name)
    data_identity = {f"{k}_{field}": v for k, s in splits.items() for field, v in (
        ("uri", s.uri), ("content_hash", s.content_hash),
        ("utterances", s.manifest.get("num_utterances")), ("hours", s.manifest.get("hours")))}
    phases.done("validate")

    # ---- MLflow run (continued on resume) -------------------------------------------------------
    tracking_uri = tracking.setup(cfg.tracking.experiment)
    run_id = previous.get("mlflow_run_id") if previous else None
    active = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name)
    run_id = active.info.run_id
    try:
        if previous is None:
            mlflow.log_params({k: str(v)[:500] for k, v in flatten(cfg).items()})
            mlflow.log_params({f"data.{k}": str(v) for k, v in data_identity.items()})
            mlflow.log_params({"model.parameters": params, "run_dir": run_uri})
            mlflow.set_tags({"task": cfg.task, "architecture": arch, "strategy": cfg.train.strategy})
        write_json(uris.join(run_uri, RUN_FILE), {
            "mlflow_run_id": run_id, "tracking_uri": tracking_uri,
            "config": OmegaConf.to_container(cfg, resolve=True)})
        payload = {
            "config": OmegaConf.to_container(cfg, resolve=True), "task": cfg.task,
            "architecture": arch, "model_config": model_values, "dev_uri": dev.uri,
            "train_manifest": train.manifest, "tracking_uri": tracking_uri, "mlflow_run_id": run_id,
            "data_identity": data_identity,
        }
        phases.done("mlflow_start")

        init_ray(address)
        import ray.data

        # Ray Train's controller notices a finished worker group on its next health check (default
        # every 2 s): a run would idle up to that long after its last step. Ray forwards this
        # variable from the driver to the controller.
        os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
        payload["step_logger"] = tracking.start_step_logger(tracking_uri, run_id)
        # Train workers log their own progress; Ray Data's bars would flood the terminal.
        ray.data.DataContext.get_current().enable_progress_bars = False
        train_dataset = ray_dataset(train.uri, cfg.task)
        if cfg.data.materialize:  # read the shards once, not again every epoch
            train_dataset = train_dataset.materialize()
        trainer = TorchTrainer(
            train_loop_per_worker, train_loop_config=payload,
            scaling_config=ray.train.ScalingConfig(
                num_workers=cfg.train.num_workers, use_gpu=cfg.train.use_gpu,
                resources_per_worker={"CPU": cfg.train.cpus_per_worker}),
            run_config=ray.train.RunConfig(
                name=run_name, storage_path=storage,
                failure_config=ray.train.FailureConfig(max_failures=cfg.train.max_failures),
                # num_to_keep=1 keeps the best; Ray never deletes the latest, so both stay.
                checkpoint_config=ray.train.CheckpointConfig(
                    num_to_keep=1, checkpoint_score_attribute="dev_score",
                    checkpoint_score_order="min")),
            datasets={"train": train_dataset},
        )
        phases.done("dataset")
        fit_started = time.time()
        result = trainer.fit()
        train_seconds = time.time() - fit_started
        ray.kill(payload["step_logger"])
        phases.split_fit(fit_started, result.metrics)
        if result.error is not None:
            raise RuntimeError(f"training run {run_name} failed: {result.error}")

        # ---- best model: test metrics, logging, registration ----------------------------------
        best = sorted(result.best_checkpoints or [], key=lambda cm: cm[1]["dev_score"])
        best_ckpt, best_metrics = best[0] if best else (result.checkpoint, result.metrics)
        with tempfile.TemporaryDirectory(prefix="lact-best-") as tmp:
            local = best_ckpt.to_directory(os.path.join(tmp, "best_checkpoint"))
            model, meta = load_checkpoint_dir(local)
            mlflow.log_artifact(os.path.join(local, "model.pt"), artifact_path="best_checkpoint")
            mlflow.log_artifact(os.path.join(local, "meta.json"), artifact_path="best_checkpoint")
            test_metrics = evaluate_split(model, cfg, splits["test"].uri) if "test" in splits else {}
            phases.done("best_and_test")
            history = metric_history(run_id)
            final = {f"test_{k}": v for k, v in test_metrics.items() if isinstance(v, float)}
            final.update(train_seconds=train_seconds, parameters=params)
            mlflow.log_metrics(final)
            mlflow.set_tags({"best_checkpoint": checkpoint_uri(best_ckpt, storage),
                             "latest_checkpoint": checkpoint_uri(result.checkpoint, storage) or ""})
            tracking.log_curves(run_id, tmp, cfg.task)
            phases.done("log_metrics_and_plots")
            model_uri = None
            if cfg.tracking.register:
                name = tracking.registered_name(cfg.task, arch, cfg.tracking.registered_name)
                model_uri = tracking.log_and_register(model, meta, name, cfg.tracking.alias)
            else:
                model_uri = tracking.log_and_register(model, meta, None, None)
            phases.done("log_and_register_model")

        throughput = history.get("audio_seconds_per_second", [])
        summary = {
            "name": cfg.name, "run_name": run_name, "run_dir": run_uri, "task": cfg.task,
            "architecture": arch, "strategy": cfg.train.strategy,
            "num_workers": cfg.train.num_workers, "parameters": params,
            "steps": int(result.metrics.get("step", 0)),
            "skipped_batches": int(result.metrics.get("skipped_batches", 0)),
            "start_step": int(result.metrics.get("start_step", 0)),
            "train_seconds": round(train_seconds, 2),
            "audio_seconds_per_second": (sum(throughput[1:] or throughput) /
                                         max(len(throughput[1:] or throughput), 1)),
            "steps_per_second": _mean(history.get("steps_per_second", [])),
            "dev": {k.removeprefix("dev_"): v for k, v in best_metrics.items()
                    if k.startswith("dev_") and k != "dev_score"},
            "test": test_metrics, "best_checkpoint": checkpoint_uri(best_ckpt, storage),
            "latest_checkpoint": checkpoint_uri(result.checkpoint, storage),
            "mlflow_run_id": run_id, "tracking_uri": tracking_uri, "model_uri": model_uri,
        }
        write_json(uris.join(run_uri, "summary.json"), summary)
        mlflow.log_dict(summary, "summary.json")
        phases.done("summary")
        summary["phase_seconds"] = phases.seconds
    finally:
        mlflow.end_run()
    if echo:
        print(summary_table(summary))
    return summary


class Phases:
    """Wall seconds of the driver's steps, and of the parts of `fit()` the workers timestamp."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.mark = time.time()

    def done(self, name: str) -> None:
        now = time.time()
        self.seconds[name] = round(now - self.mark, 3)
        self.mark = now

    def split_fit(self, fit_started: float, metrics: dict) -> None:
        """fit() = start (controller, placement group, workers, imports) + worker set-up (model,
        dev set, first batch) + steps + end (last report to fit's return). Workers send Unix times."""
        entered, first, last = (metrics.get(k) for k in ("loop_entered_at", "first_step_at",
                                                         "last_report_at"))
        now = time.time()
        if entered and first and last:
            self.seconds.update(fit_start=round(entered - fit_started, 3),
                                worker_setup=round(first - entered, 3),
                                steps=round(last - first, 3), fit_end=round(now - last, 3))
        else:
            self.seconds["fit"] = round(now - fit_started, 3)
        self.mark = now


def checkpoint_uri(checkpoint, storage: str) -> str | None:
    """A Ray checkpoint's location as a URI (Ray gives object-store paths without the scheme)."""
    if checkpoint is None:
        return None
    if uris.is_remote(storage) and "://" not in checkpoint.path:
        return f"{storage.split('://', 1)[0]}://{checkpoint.path}"
    return checkpoint.path


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def metric_history(run_id: str) -> dict[str, list[float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    out = {}
    for key in ("audio_seconds_per_second", "steps_per_second", "train_loss"):
        out[key] = [m.value for m in sorted(client.get_metric_history(run_id, key),
                                            key=lambda m: m.step)]
    return out


def evaluate_split(model, cfg: DictConfig, split_uri: str) -> dict:
    from jobs.training.evaluation import evaluate
    from pipeline.loading import LocalLoader

    loader = LocalLoader(split_uri, batch_size=cfg.data.eval_batch_size, task=cfg.task,
                         shuffle=False, max_audio_tokens=cfg.data.max_audio_tokens)
    tokenizer = None
    if cfg.task == "asr":
        from pipeline.text_tokenizer import load_text_tokenizer

        tokenizer = load_text_tokenizer(loader.manifest, split_uri)
    return evaluate(model, loader.epoch(0), cfg.task, tokenizer)


def summary_table(s: dict) -> str:
    metric = ("cer", "wer") if s["task"] == "asr" else ("nll_bits",)
    rows = [("model", f"{s['task']} / {s['architecture']} ({s['strategy']}, {s['num_workers']} workers)"),
            ("parameters", f"{s['parameters']:,}"),
            ("steps", f"{s['steps']} (skipped batches: {s['skipped_batches']})"),
            ("wall time", f"{s['train_seconds']:.1f} s"),
            ("throughput", f"{s['audio_seconds_per_second']:.1f} audio s/s, "
                           f"{s['steps_per_second']:.2f} steps/s")]
    for split in ("dev", "test"):
        values = s.get(split) or {}
        shown = ", ".join(f"{m} {values[m]:.4f}" for m in metric if m in values)
        if shown:
            rows.append((split, shown))
    rows += [("best checkpoint", s["best_checkpoint"]), ("MLflow run", s["mlflow_run_id"]),
             ("model", s["model_uri"] or "-"), ("summary", uris.join(s["run_dir"], "summary.json"))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
