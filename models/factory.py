"""build_model(task, architecture, config): the one way the trainer gets a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import nn

from models.asr import LaCTASRModel
from models.baseline import BaselineASRTransformer, BaselineAudioTransformer
from models.config import LaCTAudioConfig
from models.generator import LaCTAudioGenerator

MODELS = {
    ("asr", "lact"): LaCTASRModel,
    ("asr", "baseline"): BaselineASRTransformer,
    ("generation", "lact"): LaCTAudioGenerator,
    ("generation", "baseline"): BaselineAudioTransformer,
}
TASKS = ("asr", "generation")
ARCHITECTURES = ("lact", "baseline")


def build_model(task: str, architecture: str,
                config: LaCTAudioConfig | Mapping[str, Any] | str | Path) -> nn.Module:
    """task "asr"|"generation", architecture "lact"|"baseline"; config a LaCTAudioConfig, a
    mapping of its fields or a YAML path. Raises ValueError on unknown names or bad values."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    if isinstance(config, (str, Path)):
        config = LaCTAudioConfig.from_yaml(config)
    elif isinstance(config, Mapping):
        config = LaCTAudioConfig.from_dict(config)
    elif not isinstance(config, LaCTAudioConfig):
        raise ValueError(f"config must be a LaCTAudioConfig, a mapping or a YAML path, got {type(config).__name__}")
    return MODELS[(task, architecture)](config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
