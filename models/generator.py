"""LaCTAudioGenerator: causal decoder over discrete audio tokens (μ-law or k-means codes).

tokens -> embedding -> block-causal LaCT blocks -> next-token logits. Generation runs the
blocks incrementally with a LaCTState (fast weights + window cache), so its cost per token
does not grow with the length. `adapt_to_style` primes the fast weights on style tokens; later
generations start from them until `reset_style`.
"""

from __future__ import annotations

import torch

from models.adaptation import FastWeightAdaptation
from models.block import LaCTBlockStack
from models.config import LaCTAudioConfig
from models.errors import LaCTErrorHandler
from models.lact_layer import FastWeights
from models.decoder_base import TokenDecoder
from models.state import LaCTState


class LaCTAudioGenerator(FastWeightAdaptation, TokenDecoder):
    adapted_attribute = "style_fast_weights"

    def __init__(self, config: LaCTAudioConfig):
        super().__init__(config, lambda: LaCTBlockStack(config, causal=True))
        self.error_handler = LaCTErrorHandler()
        self.decoder.set_error_handler(self.error_handler)
        self.style_fast_weights: list[FastWeights] | None = None

    def decode(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Padding (valid False) is kept out of the fast-weight updates; adapted style weights
        are the starting fast weights."""
        x = self.decoder(x, valid, self.adapted_fast_weights(x.device))
        self.error_handler.report()
        return x

    # ------------------------------------------------------------------ incremental
    def init_state(self, batch_size: int) -> LaCTState:
        fast_init = self.adapted_fast_weights(self.head.weight.device)
        return LaCTState(layers=self.decoder.init_states(batch_size, fast_init), adapted=self.style_fast_weights)

    def step(self, tokens: torch.Tensor, state: LaCTState | None = None) -> tuple[torch.Tensor, LaCTState]:
        """Continue the sequence with tokens [B, n]: (logits [B, n, V], new state)."""
        self.check_tokens(tokens)
        state = state if state is not None else self.init_state(tokens.shape[0])
        x, layers = self.decoder.step(self.embed(tokens), state.layers, state.position)
        return self.head(self.norm(x)), LaCTState(layers=layers, position=state.position + tokens.shape[1],
                                                  adapted=state.adapted)

    @torch.no_grad()
    def adapt_to_style(self, style_tokens: torch.Tensor) -> "LaCTAudioGenerator":
        """Prime the fast weights on style token sequences ([L] or [N, L], run in order)."""
        if style_tokens.dim() == 1:
            style_tokens = style_tokens[None]
        self.check_tokens(style_tokens)
        self._adapt(self.decoder, (self.embed(row[None]) for row in style_tokens))
        return self

    def reset_style(self) -> None:
        self._forget_adaptation()
