"""The training config schema (OmegaConf structured dataclasses) and its loading.

`load_config(path, overrides)` merges a YAML file and `key=value` overrides onto the schema; an
unknown key, a wrong type or a bad choice raises UserError naming the key, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union, get_type_hints

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from jobs.tasks import TASKS
from models.arms import ALIASES as ARCHITECTURE_ALIASES, ARCHITECTURES
from models.config import LaCTAudioConfig
from pipeline import uri as uris
from pipeline.errors import UserError
from pipeline.sessions import SessionConfig

# `${work_dir:demo/features}` in a config: a path under the work directory ($LACT_AUDIO_HOME,
# default ./runs), so moving the work directory moves the data with it.
OmegaConf.register_new_resolver("work_dir", lambda path="": uris.join(uris.work_home(), path)
                                if path else uris.work_home(), replace=True)


def _unset_or(kind: type) -> Any:
    # A float field keeps the int a file wrote (the model config the checkpoints store is what
    # the config said); LaCTAudioConfig turns it into a float.
    return Optional[Union[int, float]] if kind is float else Optional[kind]


# `model.config`: every LaCTAudioConfig field, typed, None = not set (the model's default). Only
# the keys set reach the model config, the run file and the MLflow params (model_fields).
_MODEL_TYPES = get_type_hints(LaCTAudioConfig)
ModelConfigFields = make_dataclass(
    "ModelConfigFields", [(f.name, _unset_or(_MODEL_TYPES[f.name]), field(default=None))
                          for f in fields(LaCTAudioConfig)])
ModelConfigFields.__module__ = __name__  # so that pickle finds it (Ray ships WorkerSpec.config)


@dataclass
class ModelSection:
    # lact | window | static_fast_weights | full_attention (alias baseline): models/arms.py
    architecture: str = "lact"
    # models.LaCTAudioConfig fields; vocab sizes and mel_bins come from the data's manifest.
    config: ModelConfigFields = field(default_factory=ModelConfigFields)


@dataclass
class SessionsSection:
    min_seconds: float = 10.0
    max_seconds: float = 40.0


@dataclass
class DataSection:
    root: str = MISSING                   # preprocessed output URI; ${work_dir:PATH} = under the work dir
    train: str = "train"                  # split names under root
    dev: str = "dev"
    test: Optional[str] = None
    batch_size: int = 16                  # utterances per worker per step
    eval_batch_size: int = 32
    pool_size: int = 256                  # rows bucketed together by duration
    max_audio_tokens: int = 512           # generation: random crop of each sequence
    max_dev_utterances: Optional[int] = None
    materialize: bool = True              # keep the train split in Ray's object store (small data)
    # Training on sessions: consecutive utterances of one recording (speaker and chapter)
    # joined, of a duration drawn from [min_seconds, max_seconds], planned over the whole train
    # split before shuffling (pipeline/sessions.py, session_plan.py); batch_size and pool_size
    # then count sessions. Generation: each session's audio tokens joined, then cropped to
    # max_audio_tokens (long single-speaker sequences that cross utterance boundaries).
    sessions: Optional[SessionsSection] = None


@dataclass
class OptimSection:
    lr: float = 1e-3
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-8
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05            # cosine decays to lr * min_lr_ratio at max_steps
    grad_clip: float = 1.0                # 0 disables clipping


@dataclass
class SpecAugmentSection:
    enabled: bool = True
    freq_masks: int = 2
    freq_width: int = 10                  # mel bins per mask (max)
    time_masks: int = 2
    time_width: int = 20                  # frames per mask (max)
    time_ratio: float = 0.2               # a time mask covers at most this share of an utterance


@dataclass
class TrainSection:
    max_steps: int = 1000
    seed: int = 0
    num_workers: int = 1
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    strategy: str = "ddp"                 # ddp | deepspeed
    zero_stage: int = 2                   # DeepSpeed ZeRO stage 1/2/3
    bf16: bool = False
    gradient_checkpointing: bool = False
    log_every: int = 10
    eval_every: int = 200                 # also the checkpoint interval (a checkpoint carries its dev score)
    max_failures: int = 0                 # worker restarts from the latest checkpoint
    torch_threads: int = 0                # 0 = torch's default
    # Fine-tuning: start from this model's weights (models:/name@alias, runs:/..., or a checkpoint
    # URI); the optimizer, schedule and step start fresh. It must fit the model built from this
    # config and the data (same architecture, sizes and vocabulary).
    init_from: Optional[str] = None


@dataclass
class TrackingSection:
    experiment: str = "lact-audio"
    register: bool = True
    registered_name: Optional[str] = None # default lact-audio-<task>-<architecture>
    alias: str = "candidate"


@dataclass
class TrainConfig:
    name: str = "run"
    task: str = "asr"                     # asr | generation
    output: Optional[str] = None          # storage URI (local or s3://); default <work dir>/train
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    spec_augment: SpecAugmentSection = field(default_factory=SpecAugmentSection)
    tracking: TrackingSection = field(default_factory=TrackingSection)


CHOICES = {
    "task": tuple(TASKS),
    "model.architecture": (*ARCHITECTURES, *ARCHITECTURE_ALIASES),
    "train.strategy": ("ddp", "deepspeed"),
    "train.zero_stage": (1, 2, 3),
}
POSITIVE = ("data.batch_size", "data.eval_batch_size", "data.pool_size", "train.max_steps",
            "train.num_workers", "train.log_every", "train.eval_every", "optim.lr",
            "train.cpus_per_worker", "data.max_audio_tokens")
NON_NEGATIVE = ("optim.warmup_steps", "optim.grad_clip", "optim.weight_decay",
                "train.max_failures", "optim.min_lr_ratio")


def _one_line(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"config key '{key}': {message}" if key else f"config: {message}"


def load_config(path: str | None, overrides: list[str] | None = None,
                changes: list[Mapping[str, Any]] | None = None) -> DictConfig:
    """Schema <- YAML file <- `changes` (nested mappings: a study's or the nightly's changes, a
    trial's point) <- key=value overrides, validated; errors are one-line UserErrors."""
    layers = [_yaml_layer(path)] if path else []
    layers += [OmegaConf.create(dict(change)) for change in changes or []]
    layers += [_override_layer(overrides)] if overrides else []
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), *layers)
        OmegaConf.to_container(cfg, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        raise UserError(_one_line(exc)) from exc
    validate(cfg)
    return cfg


def _yaml_layer(path: str) -> DictConfig:
    file = Path(path)
    if not file.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        return OmegaConf.load(file)
    except Exception as exc:
        raise UserError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc


def _override_layer(overrides: list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise UserError(f"override {item!r} is not key=value")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as exc:
        raise UserError(f"bad override: {_one_line(exc)}") from exc


def validate(cfg: DictConfig) -> None:
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise UserError(f"config key '{key}': {value!r} is not one of {list(allowed)}")
    for key in POSITIVE:
        if not OmegaConf.select(cfg, key) > 0:
            raise UserError(f"config key '{key}': must be > 0, got {OmegaConf.select(cfg, key)}")
    for key in NON_NEGATIVE:
        if OmegaConf.select(cfg, key) < 0:
            raise UserError(f"config key '{key}': must be >= 0, got {OmegaConf.select(cfg, key)}")
    if not cfg.name or "/" in cfg.name:
        raise UserError(f"config key 'name': must be a non-empty name without '/', got {cfg.name!r}")
    if cfg.data.sessions is not None:
        session_config(cfg.data)


def session_config(data) -> SessionConfig | None:
    """The data section's sessions as the loader's SessionConfig (None: one utterance a row)."""
    s = data.sessions
    return None if s is None else SessionConfig(float(s.min_seconds), float(s.max_seconds))


def nested(values: Mapping[str, Any]) -> dict[str, Any]:
    """{"model.config.chunk_size": 16, "optim.lr": 0.1} -> {"model": {"config": {...}}, ...}:
    dotted keys as a layer load_config merges (`changes`)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        *parents, last = key.split(".")
        node = out
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = value
    return out


def model_fields(cfg: DictConfig) -> dict[str, Any]:
    """The LaCTAudioConfig fields `model.config` sets (unset ones take the model's default)."""
    values = OmegaConf.to_container(cfg.model.config, resolve=True)
    return {k: v for k, v in values.items() if v is not None}


def as_plain(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain data, resolved, for the run file: `model.config` holds the keys set."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain["model"]["config"] = model_fields(cfg)
    return plain


def flatten(cfg: DictConfig) -> dict[str, Any]:
    """Nested config -> {"train.max_steps": 1000, ...} for MLflow params."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = node

    walk("", as_plain(cfg))
    return out


def load_job_config(schema: type, path: str, overrides: list[str] | None, what: str) -> DictConfig:
    """A config that wraps a training config (a Tune study, the nightly job): schema <- YAML
    <- key=value overrides, resolved; its `base_config` is found relative to the file, wherever
    the command runs. A mistake is one UserError line starting with `what` ("study config")."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{what} not found: {path}")
    for item in overrides or []:
        if "=" not in item or item.startswith("="):
            raise UserError(f"override {item!r} is not key=value")
    try:
        layers = [OmegaConf.load(file), OmegaConf.from_dotlist(list(overrides or []))]
        job = OmegaConf.merge(OmegaConf.structured(schema), *layers)
        OmegaConf.to_container(job, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        raise UserError(f"{what} key '{key}': {str(exc).splitlines()[0]}" if key
                        else f"{what} {path}: {str(exc).splitlines()[0]}") from exc
    except Exception as exc:  # YAML syntax
        raise UserError(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    base = Path(job.base_config)
    job.base_config = str(base if base.is_absolute() else (file.parent / base).resolve())
    return job
