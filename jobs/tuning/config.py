"""The study config of `lact-audio tune` (configs/tune/*.yaml) and the training config of each
trial: the base training config, the study's `config:` changes, then the trial's point.

    name: smoke
    base_config: ../demo-asr.yaml        # a training config, relative to this file
    config: {train: {max_steps: 6}}      # changes to it for every trial (any training key)
    search: {method: grid, space: {chunk_size: [16, 64]}, arms: [window], seeds: [0, 1]}
    scheduler: {grace_period: 1, reduction_factor: 2}   # ASHA on the dev metric
    resources: {max_concurrent_trials: 2}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from jobs.training.config import load_config, load_job_config, model_fields, nested
from models import LaCTAudioConfig
from jobs.tuning import space as spaces
from pipeline.errors import UserError


@dataclass
class SearchSection:
    method: str = "grid"                  # grid | random
    num_samples: int = 4                  # random: points drawn from the space
    seed: int = 0                         # random: the same seed draws the same points
    space: dict[str, Any] = field(default_factory=dict)   # parameter -> list | {min, max, log}
    # one extra trial per arm (an architecture): a list of names, or name -> {parameter: value}
    arms: Any = None
    seeds: list[int] = field(default_factory=list)        # every point once per training seed
    reference: Optional[str] = None       # the arm every other arm is compared with (report)


@dataclass
class SchedulerSection:
    asha: bool = True                     # stop poor trials early on the dev metric
    grace_period: int = 1                 # evaluations every trial gets before it may be stopped
    reduction_factor: int = 2


@dataclass
class ResourcesSection:
    max_concurrent_trials: int = 2
    trial_cpus: float = 0.25              # the trial's own driver (> 0); workers use config.train.*


@dataclass
class StudyConfig:
    name: str = "study"
    base_config: str = MISSING            # training config the trials start from
    output: Optional[str] = None          # default <work dir>/tune; the study is <output>/<name>
    config: dict[str, Any] = field(default_factory=dict)
    search: SearchSection = field(default_factory=SearchSection)
    scheduler: SchedulerSection = field(default_factory=SchedulerSection)
    resources: ResourcesSection = field(default_factory=ResourcesSection)


def load_study(path: str, overrides: list[str] | None = None, name: str | None = None) -> DictConfig:
    """Schema <- YAML <- key=value overrides (<- --name); checked down to every trial's config."""
    study = load_job_config(StudyConfig, path, [*(overrides or []), *([f"name={name}"] if name else [])],
                            "study config")
    validate_study(study)
    return study


def search_arms(search) -> list | dict:
    """search.arms as a plain list of names or mapping name -> values ([] when absent)."""
    arms = search.arms
    return (OmegaConf.to_container(arms, resolve=True) if OmegaConf.is_config(arms) else arms) or []


def validate_study(study: DictConfig) -> None:
    s = study.search
    if s.method not in ("grid", "random"):
        raise UserError(f"study config key 'search.method': {s.method!r} is not one of ['grid', 'random']")
    for key in ("search.num_samples", "scheduler.grace_period", "resources.max_concurrent_trials"):
        if not OmegaConf.select(study, key) >= 1:
            raise UserError(f"study config key '{key}': must be >= 1, got {OmegaConf.select(study, key)}")
    if not study.resources.trial_cpus > 0:
        raise UserError("study config key 'resources.trial_cpus': must be > 0 (Tune needs a "
                        f"resource for the trial's driver), got {study.resources.trial_cpus}")
    if not study.scheduler.reduction_factor >= 2:
        raise UserError("study config key 'scheduler.reduction_factor': must be >= 2")
    if not study.name or "/" in study.name:
        raise UserError(f"study config key 'name': must be a non-empty name without '/', got {study.name!r}")
    space = OmegaConf.to_container(s.space, resolve=True)
    arms = search_arms(s)
    if not isinstance(arms, (list, dict)):
        raise UserError(f"study config key 'search.arms': expected a list of arms or a mapping, got {arms!r}")
    spaces.validate_space(space, s.method, arms)
    if any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in s.seeds) or \
            len(set(s.seeds)) != len(s.seeds):
        raise UserError(f"study config key 'search.seeds': expected distinct integers >= 0, got {list(s.seeds)}")
    if s.reference is not None and s.reference not in spaces.ARMS:
        raise UserError(f"study config key 'search.reference': {s.reference!r} is not one of {list(spaces.ARMS)}")
    base = base_training_config(study)
    if study.scheduler.asha and evaluations(base) <= study.scheduler.grace_period:
        raise UserError(f"study config key 'scheduler.grace_period': {study.scheduler.grace_period} "
                        f"leaves ASHA no evaluation to act on (a trial evaluates {evaluations(base)} "
                        "times: train.max_steps / train.eval_every)")
    # every trial's config is checked before any trial starts
    checked = _checked(study)
    from_space = spaces.trial_points(space, s.method, s.num_samples, s.seed, [], list(s.seeds))
    if from_space and all(reason for point, reason in checked if point in from_space):
        raise UserError(f"search.space: no point the model accepts ({checked[0][1]})")


class UnsupportedPoint(UserError):
    """A combination of the space the model rejects (e.g. Muon with a chunk shorter than twice
    the LaCT head dim): the study skips it and says why, instead of failing."""


def _checked(study: DictConfig) -> list[tuple[dict, str | None]]:
    s = study.search
    out = []
    arms = search_arms(s)
    for point in spaces.trial_points(OmegaConf.to_container(s.space, resolve=True), s.method,
                                     s.num_samples, s.seed, arms, list(s.seeds)):
        try:
            trial_config(study, point)
            out.append((point, None))
        except UnsupportedPoint as exc:
            out.append((point, str(exc)))
    return out


def points(study: DictConfig) -> list[dict]:
    """The trials of the study, in order: the space's points the model accepts, then the arms."""
    return [p for p, reason in _checked(study) if reason is None]


def skipped_points(study: DictConfig) -> list[tuple[dict, str]]:
    """(point, reason) for each combination of the space the model rejects."""
    return [(p, reason) for p, reason in _checked(study) if reason is not None]


def evaluations(cfg: DictConfig) -> int:
    """How often a trial reports its dev metric (every eval_every steps and at the end)."""
    return -(-cfg.train.max_steps // cfg.train.eval_every)


def base_training_config(study: DictConfig) -> DictConfig:
    try:
        return load_config(study.base_config, changes=[study_changes(study)])
    except UserError as exc:
        raise UserError(f"study config key 'config' (on {study.base_config}): {exc}") from exc


def study_changes(study: DictConfig) -> dict:
    """The study's `config:` changes to its base training config, resolved."""
    return OmegaConf.to_container(study.config, resolve=True)


def trial_config(study: DictConfig, point: dict) -> DictConfig:
    """The training config of one trial: base config <- the study's changes <- the point; a
    point the model cannot take names its parameter."""
    point_changes = nested({**spaces.overrides(point), "name": study.name})
    try:
        cfg = load_config(study.base_config, changes=[study_changes(study), point_changes])
    except UserError as exc:
        raise UserError(f"search.space {point}: {exc}") from exc
    try:
        LaCTAudioConfig.from_dict(model_fields(cfg))
    except ValueError as exc:
        raise UnsupportedPoint(f"search.space {point}: {exc}") from exc
    return cfg
