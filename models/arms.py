"""The comparison arms: LaCT and the architectures a claim about it is measured against.

    lact                 window attention + fast weights updated at test time (the paper)
    window               the same blocks with the fast-weight branch removed: window attention only
    static_fast_weights  LaCT's layer whose fast weights are ordinary trained parameters, never
                         updated (in training or at test time): what the updates themselves add
    full_attention       the plain transformer (global attention), once called `baseline`

Every arm is built from the LaCT config and matched to the LaCT model's parameter count: what
an arm drops from the LaCT layer goes to the width of its blocks' MLP (full_attention sizes its
MLP in models.baseline). `baseline` stays an alias of `full_attention`, so old configs,
checkpoints and registered models load.
"""

from __future__ import annotations

import torch
from torch import nn

from models.config import LaCTAudioConfig
from models.lact_layer import LaCTLayer
from models.parameters import count_parameters

LACT, WINDOW, STATIC, FULL = "lact", "window", "static_fast_weights", "full_attention"
ARCHITECTURES = (LACT, WINDOW, STATIC, FULL)
ALIASES = {"baseline": FULL}


def canonical_architecture(name: str) -> str:
    """The arm's name (an alias resolved); ValueError naming the choices for an unknown one."""
    name = ALIASES.get(name, name)
    if name not in ARCHITECTURES:
        choices = ", ".join([*ARCHITECTURES, *ALIASES])
        raise ValueError(f"unknown architecture {name!r}; choose one of {choices}")
    return name


def _layer_parameters(config: LaCTAudioConfig) -> int:
    with torch.device("meta"):
        return count_parameters(LaCTLayer(config, causal=True))


def _with_matched_mlp(lact: LaCTAudioConfig, arm: LaCTAudioConfig) -> LaCTAudioConfig:
    """arm with its MLP widened by the parameters its layer has fewer than LaCT's (a SwiGLU MLP
    unit costs 3 x hidden_size)."""
    extra = _layer_parameters(lact) - _layer_parameters(arm)
    width = lact.mlp_hidden_dim + max(0, round(extra / (3 * lact.hidden_size)))
    return arm.replace(mlp_multi=width / lact.hidden_size)


def arm_config(architecture: str, config: LaCTAudioConfig) -> LaCTAudioConfig:
    """The config an arm's model is built with, from the LaCT config it is compared against."""
    architecture = canonical_architecture(architecture)
    if architecture == WINDOW:
        return _with_matched_mlp(config, config.replace(use_fast_weights=False, use_window_attention=True))
    if architecture == STATIC:
        return _with_matched_mlp(config, config.replace(update_fast_weights=False, use_fast_weights=True))
    return config


def parameter_ratio(arm: nn.Module, lact: nn.Module) -> float:
    """An arm's parameter count over the LaCT model's (the match is asserted in tests)."""
    return count_parameters(arm) / count_parameters(lact)
