"""4x time subsampling of log-mel frames: two stride-2 Conv1d layers (mel bins as channels).

Conv1d rather than the usual Conv2d keeps the front end cheap on CPUs. Output length is
ceil(ceil(T / 2) / 2). Frames past a sequence's length are zeroed before each conv, so a
sequence's output does not depend on how much padding the batch adds.

causal=True pads only on the left (2 frames), so output j depends on frames <= 4j + 3 and the
layer can run on a stream: `step` keeps the two-frame left context of each conv and up to 3
not-yet-consumed input frames, and gives exactly the offline output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def subsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    return torch.div(torch.div(lengths + 1, 2, rounding_mode="floor") + 1, 2, rounding_mode="floor")


def _mask_time(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x [B, C, T]: zero the frames at or past each length."""
    t = torch.arange(x.shape[-1], device=x.device)
    return x * (t[None, :] < lengths[:, None]).to(x.dtype)[:, None, :]


class ConvSubsampling4x(nn.Module):
    def __init__(self, in_features: int, out_features: int, causal: bool):
        super().__init__()
        self.causal = causal
        self.conv1 = nn.Conv1d(in_features, out_features, kernel_size=3, stride=2)
        self.conv2 = nn.Conv1d(out_features, out_features, kernel_size=3, stride=2)
        self.act = nn.GELU()

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (2, 0) if self.causal else (1, 1))

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None):
        """features [B, T, F] -> (y [B, T', D], lengths [B]) with T' = ceil(ceil(T/2)/2)."""
        B, T, _ = features.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=features.device)
        x = features.transpose(1, 2)
        x = _mask_time(x, lengths)
        l1 = torch.div(lengths + 1, 2, rounding_mode="floor")
        y = _mask_time(self.act(self.conv1(self._pad(x))), l1)
        l2 = torch.div(l1 + 1, 2, rounding_mode="floor")
        y = _mask_time(self.act(self.conv2(self._pad(y))), l2)
        return y.transpose(1, 2), l2

    # ------------------------------------------------------------------ streaming
    def init_state(self, batch: int, like: torch.Tensor) -> dict:
        c_in, c_out = self.conv1.in_channels, self.conv1.out_channels
        return {
            "pending": like.new_zeros(batch, 0, c_in),   # input frames not yet consumed
            "ctx1": like.new_zeros(batch, c_in, 2),      # last two input frames
            "ctx2": like.new_zeros(batch, c_out, 2),     # last two first-conv outputs
        }

    def step(self, features: torch.Tensor, st: dict, final: bool) -> tuple[torch.Tensor, dict]:
        """Consume frames [B, n, F]; returns the newly complete outputs [B, m, D] and new state.
        With final=True the leftover (< 4) frames are flushed as the end of the stream."""
        if not self.causal:
            raise ValueError("streaming needs causal subsampling (config lact_causal: true)")
        buf = torch.cat([st["pending"], features], dim=1)
        n = buf.shape[1] if final else (buf.shape[1] // 4) * 4
        take, rest = buf[:, :n], buf[:, n:]
        if n == 0:
            return buf.new_zeros(buf.shape[0], 0, self.conv2.out_channels), {**st, "pending": rest}
        padded = F.pad(take, (0, 0, 0, (-n) % 4))                   # only when final
        x = torch.cat([st["ctx1"], padded.transpose(1, 2)], dim=2)
        y1 = self.act(self.conv1(x))                                 # [B, D, padded/2]
        n1 = (n + 1) // 2
        y1 = y1 * (torch.arange(y1.shape[-1], device=y1.device) < n1).to(y1.dtype)
        y2 = self.act(self.conv2(torch.cat([st["ctx2"], y1], dim=2)))
        n2 = (n1 + 1) // 2
        out = y2[:, :, :n2].transpose(1, 2)
        new = {"pending": rest, "ctx1": x[:, :, -2:], "ctx2": torch.cat([st["ctx2"], y1], dim=2)[:, :, -2:]}
        return out, new
