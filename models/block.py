"""LaCTAudioBlock: pre-norm residual block = LaCT layer (window attention + fast weights)
followed by a SwiGLU MLP. SwiGLUMLP is shared with the baseline blocks."""

from __future__ import annotations

import torch
import torch.utils.checkpoint
import torch.nn.functional as F
from torch import nn

from models.config import LaCTAudioConfig
from models.lact_layer import FastWeights, LaCTLayer
from models.layer_state import LayerState


class SwiGLUMLP(nn.Module):
    def __init__(self, hidden_size: int, inner_size: int):
        super().__init__()
        self.gate_up = nn.Linear(hidden_size, 2 * inner_size, bias=False)
        self.down = nn.Linear(inner_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class LaCTAudioBlock(nn.Module):
    def __init__(self, config: LaCTAudioConfig, causal: bool):
        super().__init__()
        self.norm1 = nn.RMSNorm(config.hidden_size)
        self.mixer = LaCTLayer(config, causal)
        self.norm2 = nn.RMSNorm(config.hidden_size)
        self.mlp = SwiGLUMLP(config.hidden_size, config.mlp_hidden_dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None,
                fast_init: FastWeights | None = None, return_fast: bool = False):
        h = self.mixer(self.norm1(x), valid, fast_init, return_fast)
        h, fast = h if return_fast else (h, None)
        x = x + self.dropout(h)
        x = x + self.dropout(self.mlp(self.norm2(x)))
        return (x, fast) if return_fast else x

    def step(self, x: torch.Tensor, st: LayerState, position: int) -> tuple[torch.Tensor, LayerState]:
        h, st = self.mixer.step(self.norm1(x), st, position)
        x = x + self.dropout(h)
        x = x + self.dropout(self.mlp(self.norm2(x)))
        return x, st


class LaCTBlockStack(nn.Module):
    """num_layers LaCT blocks with offline forward (optionally gradient-checkpointed) and
    streaming step; shared by the ASR encoder and the generator's decoder."""

    def __init__(self, config: LaCTAudioConfig, causal: bool):
        super().__init__()
        self.causal = causal
        self.gradient_checkpointing = config.gradient_checkpointing
        self.blocks = nn.ModuleList(LaCTAudioBlock(config, causal) for _ in range(config.num_layers))

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None,
                fast_init: list[FastWeights] | None = None, return_fast: bool = False):
        finals = []
        for i, block in enumerate(self.blocks):
            init = None if fast_init is None else fast_init[i]
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                out = torch.utils.checkpoint.checkpoint(block, x, valid, init, return_fast, use_reentrant=False)
            else:
                out = block(x, valid, init, return_fast)
            if return_fast:
                x, fast = out
                finals.append(fast)
            else:
                x = out
        return (x, finals) if return_fast else x

    def init_states(self, batch: int, fast_init: list[FastWeights] | None = None) -> list[LayerState]:
        return [b.mixer.init_state(batch, None if fast_init is None else fast_init[i])
                for i, b in enumerate(self.blocks)]

    def step(self, x: torch.Tensor, states: list[LayerState], position: int) -> tuple[torch.Tensor, list[LayerState]]:
        new = []
        for block, st in zip(self.blocks, states):
            x, st = block.step(x, st, position)
            new.append(st)
        return x, new

    def flush(self, states: list[LayerState]) -> list[LayerState]:
        return [b.mixer.flush(st) for b, st in zip(self.blocks, states)]

    def set_error_handler(self, handler) -> None:
        for b in self.blocks:
            b.mixer.error_handler = handler
