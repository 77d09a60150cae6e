"""Test-time adaptation of a LaCT model, shared by the ASR model (adapt_to_speaker) and the
generator (adapt_to_style): inputs run in order through the LaCT blocks, each starting from the
fast weights the previous one left, and the final weights become the starting fast weights of
later forwards and streams (and travel in their LaCTState, see restore_adaptation)."""

from __future__ import annotations

from typing import Iterable, Self

import torch
from torch import nn

from models.fast_weight import FastWeights
from models.state import LaCTState


class FastWeightAdaptation:
    """Mixin for a model with `head`, `error_handler` and its adapted weights (per layer,
    [lact_heads, ...]) in the attribute `adapted_attribute` names: each model keeps its own
    name, the one its registered (pickled) models hold."""

    adapted_attribute: str

    def adapted_fast_weights(self, device: torch.device) -> list[FastWeights] | None:
        """The adapted starting fast weights on `device`, or None (the learnt ones)."""
        adapted = getattr(self, self.adapted_attribute)
        if adapted is None:
            return None
        return [tuple(w.to(device) for w in f) for f in adapted]

    @torch.no_grad()
    def _adapt(self, blocks: nn.Module, inputs: Iterable[torch.Tensor]) -> None:
        """Run each block input [1, T, D] (made when the loop reaches it, in eval mode) from the
        weights the previous one left; keep the last ones. Calls accumulate."""
        was_training = self.training
        self.eval()
        try:
            fast = self.adapted_fast_weights(self.head.weight.device)
            for x in inputs:
                _, finals = blocks(x, None, fast, return_fast=True)
                fast = [tuple(w.detach() for w in f) for f in finals]   # batch 1: [heads, ...]
            setattr(self, self.adapted_attribute, fast)
        finally:
            self.train(was_training)
        self.error_handler.report()

    def restore_adaptation(self, state: LaCTState) -> Self:
        """Start later forwards and streams from the adaptation a (saved) state holds."""
        adapted = None if state.adapted is None else [
            tuple(w.detach().to(self.head.weight.device) for w in f) for f in state.adapted]
        setattr(self, self.adapted_attribute, adapted)
        return self

    def _forget_adaptation(self) -> None:
        setattr(self, self.adapted_attribute, None)
