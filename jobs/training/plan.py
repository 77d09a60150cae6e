"""The plan of a training run: everything a run needs, checked and resolved from the config
before Ray starts (data splits, the model config completed from the data, the run folder).

    plan = make_plan(cfg)                       # UserError on any mistake, nothing started yet
    spec = plan.worker_spec(tracking_uri, run_id)   # what every Train worker receives
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from omegaconf import DictConfig, OmegaConf

from jobs.runs.model_io import load_model
from jobs.runs.storage import pick_run_dir, read_run_file
from jobs.tasks import task_named
from jobs.training.config import model_fields, session_config
from jobs.training.loop import WorkerSpec
from models import LaCTAudioConfig, count_parameters
from pipeline import uri as uris
from pipeline.errors import UserError
from pipeline.session_plan import SessionPlan, plan_sessions
from pipeline.split_reader import open_split


@dataclass
class RunPlan:
    cfg: DictConfig
    splits: dict                 # "train" | "dev" | "test" -> pipeline.loading.SplitInfo
    model_config: dict           # LaCTAudioConfig fields, vocab sizes and mel bins from the data
    parameters: int
    storage: str                 # absolute URI holding the run folders
    run_name: str
    previous: dict | None        # the run file of the run being continued (resume), else None
    init_weights: dict | None = None   # train.init_from's state dict (fine-tuning), else None
    sessions: SessionPlan | None = None  # data.sessions: the train split's sessions, planned

    @cached_property
    def task(self):
        return task_named(self.cfg.task)

    @property
    def architecture(self) -> str:
        return self.cfg.model.architecture

    @property
    def run_uri(self) -> str:
        return uris.join(self.storage, self.run_name)

    @property
    def data_identity(self) -> dict:
        """Which data the run saw, for MLflow params and checkpoint metadata; with sessions,
        the train split's session lengths as planned (train_sessions, train_session_*_seconds)."""
        identity = {f"{key}_{field}": value for key, split in self.splits.items() for field, value in (
            ("uri", split.uri), ("content_hash", split.content_hash),
            ("utterances", split.manifest.get("num_utterances")),
            ("hours", split.manifest.get("hours")))}
        if self.sessions is not None:
            identity.update({f"train_{k}": v for k, v in self.sessions.summary().items()})
        return identity

    def worker_spec(self, tracking_uri: str | None, run_id: str | None,
                    step_logger=None) -> WorkerSpec:
        return WorkerSpec(config=OmegaConf.to_object(self.cfg), model_config=self.model_config,
                          dev_uri=self.splits["dev"].uri,
                          train_manifest=self.splits["train"].manifest,
                          tracking_uri=tracking_uri, mlflow_run_id=run_id,
                          data_identity=self.data_identity, step_logger=step_logger,
                          init_weights=self.init_weights)


def make_plan(cfg: DictConfig, resume: bool = False, run_name: str | None = None) -> RunPlan:
    """Check the data, the model and the output location; pick the run folder.

    run_name: use exactly this folder (Tune trials), continuing it when it was started before;
    otherwise a fresh `<name>-<time>-<id>`, or with resume the newest earlier run of the name."""
    splits = data_splits(cfg)
    model_values = model_config(cfg, splits["train"].manifest)
    storage = uris.absolute(cfg.output or uris.join(uris.work_home(), "train"))
    uris.ensure_writable(storage, "training output (config key 'output')")
    if run_name:
        previous = read_run_file(uris.join(storage, run_name))
    else:
        run_name, previous = pick_run_dir(storage, cfg.name, resume)
    plan = RunPlan(cfg, splits, model_values, 0, storage, run_name, previous)
    plan.sessions = train_sessions(cfg, splits["train"])
    with torch.device("meta"):  # sizes only: no memory, no initialisation
        shapes = plan.worker_spec(None, None).build_model()
    plan.parameters = count_parameters(shapes)
    if cfg.train.init_from:
        plan.init_weights = initial_weights(cfg, shapes)
    return plan


def train_sessions(cfg: DictConfig, train) -> SessionPlan | None:
    """data.sessions: the train split's sessions, cut from its index columns by train.seed
    (pipeline/session_plan.py); their lengths go to the log and the MLflow params."""
    config = session_config(cfg.data)
    if config is None:
        return None
    plan = plan_sessions(train.shard_uris, config, int(cfg.train.seed))
    if not plan.sessions:
        raise UserError(f"config key 'data.sessions': the train split {train.uri} has no rows to join")
    print(f"train split {plan.describe()}", flush=True)
    return plan


def initial_weights(cfg: DictConfig, shapes) -> dict:
    """train.init_from's weights, checked to fit the model this config builds from this data."""
    source = cfg.train.init_from
    model, meta = load_model(source)
    for key, ours in (("task", cfg.task), ("architecture", cfg.model.architecture)):
        if meta.get(key) != ours:
            raise UserError(f"config key 'train.init_from': {source} is a {meta.get(key)} model, "
                            f"this run trains {ours}")
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ours = shapes.state_dict()
    for name, tensor in ours.items():  # e.g. a vocabulary that grew changes the output layer
        if name not in weights or weights[name].shape != tensor.shape:
            found = tuple(weights[name].shape) if name in weights else "absent"
            raise UserError(f"config key 'train.init_from': {source} does not fit this model: "
                            f"{name} is {found} there, {tuple(tensor.shape)} here")
    extra = sorted(set(weights) - set(ours))
    if extra:
        raise UserError(f"config key 'train.init_from': {source} does not fit this model: "
                        f"it has {extra[0]} (and {len(extra) - 1} more) that this model lacks")
    return weights


def data_splits(cfg: DictConfig) -> dict:
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
    task_named(cfg.task).check_data(train_manifest)
    values = model_fields(cfg)
    values["mel_bins"] = int(train_manifest["feature"]["n_mels"])
    values["vocab_size"] = int(train_manifest["text_tokenizer"]["vocab_size"])
    if train_manifest.get("audio_tokenizer"):
        values["audio_vocab_size"] = int(train_manifest["audio_tokenizer"]["vocab_size"])
    values["gradient_checkpointing"] = bool(cfg.train.gradient_checkpointing)
    try:
        LaCTAudioConfig.from_dict(values)
    except (ValueError, TypeError) as exc:
        raise UserError(f"config key 'model.config': {exc}") from exc
    return values
