"""LaCTAudioGenerator: causal decoder over discrete audio tokens (μ-law or k-means codes).

tokens -> embedding -> block-causal LaCT blocks -> next-token logits. Generation runs the
blocks incrementally with a LaCTState (fast weights + window cache), so its cost per token
does not grow with the length. `adapt_to_style` primes the fast weights on style tokens; later
generations start from them until `reset_style`.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from models.block import LaCTBlockStack
from models.config import LaCTAudioConfig
from models.errors import LaCTErrorHandler
from models.lact_layer import FastWeights
from models.sampling import check_prompt, chunked, token_stream
from models.state import LaCTState


class LaCTAudioGenerator(nn.Module):
    def __init__(self, config: LaCTAudioConfig):
        super().__init__()
        self.config = config
        D = config.hidden_size
        self.embed = nn.Embedding(config.audio_vocab_size, D)
        self.input_dropout = nn.Dropout(config.dropout)
        self.decoder = LaCTBlockStack(config, causal=True)
        self.norm = nn.RMSNorm(D)
        self.head = nn.Linear(D, config.audio_vocab_size, bias=False)
        self.error_handler = LaCTErrorHandler()
        self.decoder.set_error_handler(self.error_handler)
        self.style_fast_weights: list[FastWeights] | None = None

    def _style_weights(self, device: torch.device):
        if self.style_fast_weights is None:
            return None
        return [tuple(w.to(device) for w in f) for f in self.style_fast_weights]

    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, L], got {tuple(tokens.shape)}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.config.audio_vocab_size):
            raise ValueError(f"audio token ids must be in [0, {self.config.audio_vocab_size})")

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, L] -> logits [B, L, audio_vocab_size]; position t sees tokens <= t.
        Padding at the end (lengths) is kept out of the fast-weight updates."""
        self._check_tokens(tokens)
        x = self.input_dropout(self.embed(tokens))
        valid = None
        if lengths is not None and bool((lengths < tokens.shape[1]).any()):
            valid = torch.arange(tokens.shape[1], device=tokens.device)[None] < lengths[:, None]
        x = self.decoder(x, valid, self._style_weights(x.device))
        self.error_handler.report()
        return self.head(self.norm(x))

    # ------------------------------------------------------------------ incremental
    def init_state(self, batch_size: int) -> LaCTState:
        return LaCTState(layers=self.decoder.init_states(batch_size, self._style_weights(self.head.weight.device)),
                         adapted=self.style_fast_weights)

    def step(self, tokens: torch.Tensor, state: LaCTState | None = None) -> tuple[torch.Tensor, LaCTState]:
        """Continue the sequence with tokens [B, n]: (logits [B, n, V], new state)."""
        self._check_tokens(tokens)
        state = state if state is not None else self.init_state(tokens.shape[0])
        x, layers = self.decoder.step(self.embed(tokens), state.layers, state.position)
        return self.head(self.norm(x)), LaCTState(layers=layers, position=state.position + tokens.shape[1],
                                                  adapted=state.adapted)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, max_length: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """prompt [B, P] -> [B, max_length] (prompt followed by sampled tokens)."""
        check_prompt(prompt, max_length, self.config.audio_vocab_size)
        new = list(token_stream(self.step, None, prompt, max_length, temperature, top_k, generator))
        return torch.cat([prompt.long(), torch.stack(new, dim=1)], dim=1)

    @torch.no_grad()
    def generate_streaming(self, prompt: torch.Tensor, max_length: int, chunk_tokens: int | None = None,
                           temperature: float = 1.0, top_k: int | None = None,
                           generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        """Like generate, but yields the new tokens in pieces [B, <= chunk_tokens] as soon as
        they exist (default: one LaCT chunk). Same seed -> same tokens as generate."""
        check_prompt(prompt, max_length, self.config.audio_vocab_size)
        chunk_tokens = chunk_tokens or self.config.chunk_size
        yield from chunked(token_stream(self.step, None, prompt, max_length, temperature, top_k,
                                        generator), chunk_tokens)

    @torch.no_grad()
    def adapt_to_style(self, style_tokens: torch.Tensor) -> "LaCTAudioGenerator":
        """Prime the fast weights on style token sequences ([L] or [N, L], run in order)."""
        if style_tokens.dim() == 1:
            style_tokens = style_tokens[None]
        self._check_tokens(style_tokens)
        was_training = self.training
        self.eval()
        try:
            fast = self._style_weights(self.head.weight.device)
            for row in style_tokens:
                _, finals = self.decoder(self.embed(row[None]), None, fast, return_fast=True)
                fast = [tuple(w.detach() for w in f) for f in finals]
            self.style_fast_weights = fast
        finally:
            self.train(was_training)
        self.error_handler.report()
        return self

    def restore_adaptation(self, state: LaCTState) -> "LaCTAudioGenerator":
        """Start later generations from the style adaptation a (saved) state holds."""
        self.style_fast_weights = None if state.adapted is None else [
            tuple(w.detach().to(self.head.weight.device) for w in f) for f in state.adapted]
        return self

    def reset_style(self) -> None:
        self.style_fast_weights = None
