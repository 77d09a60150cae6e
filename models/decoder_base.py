"""What every audio-token decoder shares: tokens -> embedding -> causal decoder -> RMSNorm -> logits.

`TokenDecoder` owns the embedding, the input dropout, the final norm and the output head, checks
token ids, turns `lengths` into a padding mask, and implements `generate` / `generate_streaming`
on top of the model's own incremental `step(tokens, state) -> (logits, state)` (LaCT state or
KV cache). A model supplies its decoder, `decode` (when it differs) and `step`. The attribute names are the checkpoints'
state_dict prefixes (embed., decoder., norm., head.): keep them.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import nn

from models.config import LaCTAudioConfig
from models.sampling import check_prompt, chunked, token_stream


class TokenDecoder(nn.Module):
    """Base of the LaCT generator and the baseline audio transformer."""

    def __init__(self, config: LaCTAudioConfig, make_decoder: Callable[[], nn.Module]):
        super().__init__()
        self.config = config
        D = config.hidden_size
        self.embed = nn.Embedding(config.audio_vocab_size, D)
        self.input_dropout = nn.Dropout(config.dropout)
        self.decoder = make_decoder()   # built here, in the order the parameters always were drawn
        self.norm = nn.RMSNorm(D)
        self.head = nn.Linear(D, config.audio_vocab_size, bias=False)

    def check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, L], got {tuple(tokens.shape)}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.config.audio_vocab_size):
            raise ValueError(f"audio token ids must be in [0, {self.config.audio_vocab_size})")

    def decode(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Embedded tokens [B, L, D] (valid [B, L] or None) -> decoded [B, L, D]."""
        return self.decoder(x, valid)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, L] -> logits [B, L, audio_vocab_size]; position t sees tokens <= t.
        Padding at the end (lengths) is masked."""
        self.check_tokens(tokens)
        valid = None
        if lengths is not None and bool((lengths < tokens.shape[1]).any()):
            valid = torch.arange(tokens.shape[1], device=tokens.device)[None] < lengths[:, None]
        x = self.decode(self.input_dropout(self.embed(tokens)), valid)
        return self.head(self.norm(x))

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
        yield from chunked(token_stream(self.step, None, prompt, max_length, temperature, top_k,
                                        generator), chunk_tokens or self.config.chunk_size)
