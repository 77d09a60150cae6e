"""build_model(family, architecture, config): the one way the trainer gets a model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from models.arms import ARCHITECTURES, FULL, arm_config, canonical_architecture
from models.asr import LaCTASRModel
from models.baseline import BaselineASRTransformer, BaselineAudioTransformer
from models.config import LaCTAudioConfig
from models.generator import LaCTAudioGenerator


@dataclass(frozen=True)
class ModelFamily:
    """A model family's classes: the LaCT model (window and static_fast_weights are LaCT models
    built from an arm's config, models/arms.py) and its full-attention baseline. The task objects
    (jobs/tasks) name theirs."""

    lact: type[nn.Module]
    full_attention: type[nn.Module]


ASR_MODELS = ModelFamily(LaCTASRModel, BaselineASRTransformer)
GENERATION_MODELS = ModelFamily(LaCTAudioGenerator, BaselineAudioTransformer)
__all__ = ["ARCHITECTURES", "ASR_MODELS", "GENERATION_MODELS", "ModelFamily", "build_model"]


def build_model(family: ModelFamily, architecture: str,
                config: LaCTAudioConfig | Mapping[str, Any] | str | Path) -> nn.Module:
    """family ASR_MODELS | GENERATION_MODELS; architecture one of models.arms.ARCHITECTURES (or the
    alias "baseline"), built from and parameter-matched to the LaCT config; config a
    LaCTAudioConfig, a mapping of its fields or a YAML path. Raises ValueError on unknown names or
    bad values."""
    if not isinstance(family, ModelFamily):
        raise ValueError(f"unknown model family {family!r}; pass models.factory.ASR_MODELS or GENERATION_MODELS "
                         f"(a task object's .models)")
    architecture = canonical_architecture(architecture)
    if isinstance(config, (str, Path)):
        config = LaCTAudioConfig.from_yaml(config)
    elif isinstance(config, Mapping):
        config = LaCTAudioConfig.from_dict(config)
    elif not isinstance(config, LaCTAudioConfig):
        raise ValueError(f"config must be a LaCTAudioConfig, a mapping or a YAML path, got {type(config).__name__}")
    if architecture == FULL:
        return family.full_attention(config)
    return family.lact(arm_config(architecture, config))
