"""What every ASR model shares: log-mel -> 4x conv subsampling -> encoder -> RMSNorm -> CTC head.

`ASRModel` owns the front end, the input dropout, the final norm and the CTC head (blank 0) and
checks the features; a model supplies only its encoder (`self.encoder`) and how to run it
(`encode`). The attribute names are the checkpoints' state_dict prefixes (frontend., encoder.,
norm., head.): keep them.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from models.config import LaCTAudioConfig
from models.subsampling import ConvSubsampling4x


def lengths_to_valid(lengths: torch.Tensor, T: int) -> torch.Tensor | None:
    """[B, T] bool of real (non-padded) positions, or None when nothing is padded."""
    if bool((lengths >= T).all()):
        return None
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


class ASRModel(nn.Module):
    """Base of the LaCT and baseline ASR models; subclasses set self.encoder and encode()."""

    def __init__(self, config: LaCTAudioConfig, make_encoder: Callable[[], nn.Module], causal_frontend: bool):
        super().__init__()
        self.config = config
        D = config.hidden_size
        self.frontend = ConvSubsampling4x(config.mel_bins, D, causal=causal_frontend)
        self.input_dropout = nn.Dropout(config.dropout)
        self.encoder = make_encoder()   # built here, in the order the parameters always were drawn
        self.norm = nn.RMSNorm(D)
        self.head = nn.Linear(D, config.vocab_size)

    def check_features(self, features: torch.Tensor, name: str = "features") -> None:
        if features.dim() != 3 or features.shape[-1] != self.config.mel_bins:
            raise ValueError(f"{name} must be [B, T, {self.config.mel_bins}], got {tuple(features.shape)}")

    def encode(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Encoder tokens [B, T', D] (valid [B, T'] or None) -> encoded [B, T', D]."""
        return self.encoder(x, valid)

    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor | None = None):
        """features [B, T, mel_bins], feature_lengths [B] -> (logits [B, T', V], out_lengths [B])."""
        self.check_features(features)
        x, lengths = self.frontend(features, feature_lengths)
        x = self.encode(self.input_dropout(x), lengths_to_valid(lengths, x.shape[1]))
        return self.head(self.norm(x)), lengths
