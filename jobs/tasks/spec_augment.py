"""SpecAugment (frequency and time masking) on padded, normalised log-mel batches, with
torchaudio's transforms. Training only."""

from __future__ import annotations

import torch
import torchaudio.transforms as T


class SpecAugment(torch.nn.Module):
    def __init__(self, freq_masks: int = 2, freq_width: int = 10, time_masks: int = 2,
                 time_width: int = 20, time_ratio: float = 0.2):
        super().__init__()
        # iid_masks: a different mask per utterance of the batch.
        self.freq = torch.nn.ModuleList(
            [T.FrequencyMasking(freq_width, iid_masks=True) for _ in range(freq_masks)])
        self.time = torch.nn.ModuleList(
            [T.TimeMasking(time_width, iid_masks=True, p=time_ratio) for _ in range(time_masks)])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T, n_mels] -> masked copy (masked cells set to 0, the CMVN mean)."""
        x = features.transpose(1, 2).unsqueeze(1)  # [B, 1, n_mels, T] as torchaudio expects
        for mask in self.freq:
            x = mask(x, 0.0)
        for mask in self.time:
            x = mask(x, 0.0)
        return x.squeeze(1).transpose(1, 2).contiguous()
