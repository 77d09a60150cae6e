"""Plain-transformer baselines of the same width and depth as the LaCT models.

Full (global) self-attention through PyTorch's fused scaled_dot_product_attention, pre-norm
blocks with SwiGLU MLPs. To compare at equal size, the baseline MLP is widened by exactly the
parameters the LaCT layer adds over plain attention (fast weights, lr/momentum projections),
so the parameter counts of LaCT and baseline models agree to well within 5%.
"""

from __future__ import annotations

import torch
import torch.utils.checkpoint
from torch import nn

from models.asr_base import ASRModel
from models.attention import SelfAttention
from models.block import SwiGLUMLP
from models.config import LaCTAudioConfig
from models.decoder_base import TokenDecoder
from models.lact_layer import LaCTLayer
from models.parameters import count_parameters


def baseline_mlp_hidden(config: LaCTAudioConfig) -> int:
    """MLP width that gives a baseline block the parameter count of a LaCT block."""
    with torch.device("meta"):
        extra = count_parameters(LaCTLayer(config, causal=True)) - count_parameters(
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


class BaselineASRTransformer(ASRModel):
    """log-mel -> 4x conv subsampling -> full-attention transformer -> CTC head (blank 0)."""

    def __init__(self, config: LaCTAudioConfig):
        super().__init__(config, lambda: _BaselineStack(config, causal=False), causal_frontend=False)


class BaselineAudioTransformer(TokenDecoder):
    """Causal full-attention decoder over audio tokens; generation uses a growing KV cache."""

    def __init__(self, config: LaCTAudioConfig):
        super().__init__(config, lambda: _BaselineStack(config, causal=True))

    def step(self, tokens: torch.Tensor, state: dict | None = None) -> tuple[torch.Tensor, dict]:
        """Continue with tokens [B, n]; state = {"position", "caches"} (KV cache grows)."""
        self.check_tokens(tokens)
        state = state or {"position": 0, "caches": [{} for _ in self.decoder.blocks]}
        x = self.embed(tokens)
        caches = []
        for block, cache in zip(self.decoder.blocks, state["caches"]):
            x, cache = block.step(x, cache, state["position"])
            caches.append(cache)
        return self.head(self.norm(x)), {"position": state["position"] + tokens.shape[1], "caches": caches}
