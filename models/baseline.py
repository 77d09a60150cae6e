"""Plain-transformer baselines of the same width and depth as the LaCT models.

Full (global) self-attention through PyTorch's fused scaled_dot_product_attention, pre-norm
blocks with SwiGLU MLPs. To compare at equal size, the baseline MLP is widened by exactly the
parameters the LaCT layer adds over plain attention (fast weights, lr/momentum projections),
so the parameter counts of LaCT and baseline models agree to well within 5%.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.utils.checkpoint
from torch import nn

from models.asr import lengths_to_valid
from models.attention import SelfAttention
from models.block import SwiGLUMLP
from models.config import LaCTAudioConfig
from models.lact_layer import LaCTLayer
from models.sampling import check_prompt, chunked, token_stream
from models.subsampling import ConvSubsampling4x


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def baseline_mlp_hidden(config: LaCTAudioConfig) -> int:
    """MLP width that gives a baseline block the parameter count of a LaCT block."""
    with torch.device("meta"):
        extra = _count(LaCTLayer(config, causal=True)) - _count(
            SelfAttention(config.hidden_size, config.num_attention_heads, causal=True))
    return config.mlp_hidden_dim + max(0, round(extra / (3 * config.hidden_size)))


class BaselineBlock(nn.Module):
    def __init__(self, config: LaCTAudioConfig, causal: bool):
        super().__init__()
        self.norm1 = nn.RMSNorm(config.hidden_size)
        self.attn = SelfAttention(config.hidden_size, config.num_attention_heads, causal, config.rope_theta)
        self.norm2 = nn.RMSNorm(config.hidden_size)
        self.mlp = SwiGLUMLP(config.hidden_size, baseline_mlp_hidden(config))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), valid))
        return x + self.dropout(self.mlp(self.norm2(x)))

    def step(self, x: torch.Tensor, cache: dict, position: int) -> tuple[torch.Tensor, dict]:
        h, cache = self.attn.step(self.norm1(x), cache, position)
        x = x + self.dropout(h)
        return x + self.dropout(self.mlp(self.norm2(x))), cache


class _BaselineStack(nn.Module):
    def __init__(self, config: LaCTAudioConfig, causal: bool):
        super().__init__()
        self.gradient_checkpointing = config.gradient_checkpointing
        self.blocks = nn.ModuleList(BaselineBlock(config, causal) for _ in range(config.num_layers))

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, valid, use_reentrant=False)
            else:
                x = block(x, valid)
        return x


class BaselineASRTransformer(nn.Module):
    """log-mel -> 4x conv subsampling -> full-attention transformer -> CTC head (blank 0)."""

    def __init__(self, config: LaCTAudioConfig):
        super().__init__()
        self.config = config
        D = config.hidden_size
        self.frontend = ConvSubsampling4x(config.mel_bins, D, causal=False)
        self.input_dropout = nn.Dropout(config.dropout)
        self.encoder = _BaselineStack(config, causal=False)
        self.norm = nn.RMSNorm(D)
        self.head = nn.Linear(D, config.vocab_size)

    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor | None = None):
        if features.dim() != 3 or features.shape[-1] != self.config.mel_bins:
            raise ValueError(f"features must be [B, T, {self.config.mel_bins}], got {tuple(features.shape)}")
        x, lengths = self.frontend(features, feature_lengths)
        x = self.encoder(self.input_dropout(x), lengths_to_valid(lengths, x.shape[1]))
        return self.head(self.norm(x)), lengths


class BaselineAudioTransformer(nn.Module):
    """Causal full-attention decoder over audio tokens; generation uses a growing KV cache."""

    def __init__(self, config: LaCTAudioConfig):
        super().__init__()
        self.config = config
        D = config.hidden_size
        self.embed = nn.Embedding(config.audio_vocab_size, D)
        self.input_dropout = nn.Dropout(config.dropout)
        self.decoder = _BaselineStack(config, causal=True)
        self.norm = nn.RMSNorm(D)
        self.head = nn.Linear(D, config.audio_vocab_size, bias=False)

    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, L], got {tuple(tokens.shape)}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.config.audio_vocab_size):
            raise ValueError(f"audio token ids must be in [0, {self.config.audio_vocab_size})")

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        self._check_tokens(tokens)
        valid = None
        if lengths is not None and bool((lengths < tokens.shape[1]).any()):
            valid = torch.arange(tokens.shape[1], device=tokens.device)[None] < lengths[:, None]
        x = self.decoder(self.input_dropout(self.embed(tokens)), valid)
        return self.head(self.norm(x))

    def step(self, tokens: torch.Tensor, state: dict | None = None) -> tuple[torch.Tensor, dict]:
        """Continue with tokens [B, n]; state = {"position", "caches"} (KV cache grows)."""
        self._check_tokens(tokens)
        state = state or {"position": 0, "caches": [{} for _ in self.decoder.blocks]}
        x = self.embed(tokens)
        caches = []
        for block, cache in zip(self.decoder.blocks, state["caches"]):
            x, cache = block.step(x, cache, state["position"])
            caches.append(cache)
        return self.head(self.norm(x)), {"position": state["position"] + tokens.shape[1], "caches": caches}

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, max_length: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        check_prompt(prompt, max_length, self.config.audio_vocab_size)
        new = list(token_stream(self.step, None, prompt, max_length, temperature, top_k, generator))
        return torch.cat([prompt.long(), torch.stack(new, dim=1)], dim=1)

    @torch.no_grad()
    def generate_streaming(self, prompt: torch.Tensor, max_length: int, chunk_tokens: int | None = None,
                           temperature: float = 1.0, top_k: int | None = None,
                           generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        check_prompt(prompt, max_length, self.config.audio_vocab_size)
        yield from chunked(token_stream(self.step, None, prompt, max_length, temperature, top_k,
                                        generator), chunk_tokens or self.config.chunk_size)
