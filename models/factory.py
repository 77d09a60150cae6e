"""build_model(task, architecture, config): the one way the trainer gets a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import nn

from models.arms import ARCHITECTURES, FULL, arm_config, canonical_architecture
from models.asr import LaCTASRModel
from models.baseline import BaselineASRTransformer, BaselineAudioTransformer
from models.config import LaCTAudioConfig
from models.generator import LaCTAudioGenerator

# window and static_fast_weights are LaCT models built from an arm's config (models/arms.py).
LACT_MODELS = {"asr": LaCTASRModel, "generation": LaCTAudioGenerator}
FULL_ATTENTION_MODELS = {"asr": BaselineASRTransformer, "generation": BaselineAudioTransformer}
TASKS = ("asr", "generation")
__all__ = ["ARCHITECTURES", "TASKS", "build_model", "count_parameters"]


def build_model(task: str, architecture: str,
                config: LaCTAudioConfig | Mapping[str, Any] | str | Path) -> nn.Module:
    """task "asr"|"generation"; architecture one of models.arms.ARCHITECTURES (or the alias
    "baseline"), built from and parameter-matched to the LaCT config; config a LaCTAudioConfig,
    a mapping of its fields or a YAML path. Raises ValueError on unknown names or bad values."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    architecture = canonical_architecture(architecture)
    if isinstance(config, (str, Path)):
        config = LaCTAudioConfig.from_yaml(config)
    elif isinstance(config, Mapping):
        config = LaCTAudioConfig.from_dict(config)
    elif not isinstance(config, LaCTAudioConfig):
        raise ValueError(f"config must be a LaCTAudioConfig, a mapping or a YAML path, got {type(config).__name__}")
    if architecture == FULL:
        return FULL_ATTENTION_MODELS[task](config)
    return LACT_MODELS[task](arm_config(architecture, config))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
