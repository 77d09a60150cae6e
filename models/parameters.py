"""The one parameter counter: plans and reports show it, and the arms are matched by it."""

from __future__ import annotations

from torch import nn


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
