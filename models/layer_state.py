"""LayerState: what one block-causal LaCT layer carries from one piece of a stream to the next
(LaCTState.layers[i]; LaCTLayer.init_state/step/flush make and advance it).

Saved (LaCTState.state_dict) as the plain tensor dict every saved stream has used, keys
ck/cv (window cache), w{i} (fast weights), n{i} (their row norms), m{i} (momentum), pk/pv/plr/pm
(pending chunk), so states saved before and after this type existed load alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

Tensor = torch.Tensor


@dataclass
class LayerState:
    # sliding-window attention cache: the last window-1 keys and values [B, heads, <window, head dim]
    window_keys: Tensor
    window_values: Tensor
    # fast weights (w0, w1, w2) or (w0,) as [B*lact_heads, ...]; () for a layer without them
    fast: tuple[Tensor, ...] = ()
    norms: tuple[Tensor, ...] = ()                # their row norms, which weight-norm retention keeps
    momentum: tuple[Tensor, ...] | None = None    # momentum buffers (use_momentum)
    # the not yet complete chunk: read already, its update pending until the chunk fills
    pending_keys: Tensor | None = None            # [B*lact_heads, n < chunk_size, lact head dim]
    pending_values: Tensor | None = None
    pending_lr: Tensor | None = None              # [len(fast), B*lact_heads, n]
    pending_momentum: Tensor | None = None        # [B*lact_heads, n] (use_momentum)

    @property
    def batch_size(self) -> int:
        return self.window_keys.shape[0]

    @property
    def pending(self) -> int:
        """Tokens of the pending partial chunk."""
        return 0 if self.pending_keys is None else self.pending_keys.shape[1]

    def tensors(self) -> Iterator[Tensor]:
        yield from self.to_dict().values()

    def map(self, fn: Callable[[Tensor], Tensor]) -> "LayerState":
        """fn on every tensor (clone, detach, to)."""
        return LayerState.from_dict({k: fn(v) for k, v in self.to_dict().items()})

    def to_dict(self) -> dict[str, Tensor]:
        """The saved form (module docstring)."""
        d = {"ck": self.window_keys, "cv": self.window_values}
        d.update({f"w{i}": w for i, w in enumerate(self.fast)})
        d.update({f"n{i}": n for i, n in enumerate(self.norms)})
        if self.momentum is not None:
            d.update({f"m{i}": m for i, m in enumerate(self.momentum)})
        named = {"pm": self.pending_momentum, "pk": self.pending_keys, "pv": self.pending_values,
                 "plr": self.pending_lr}
        d.update({k: v for k, v in named.items() if v is not None})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Tensor]) -> "LayerState":
        count = sum(k.startswith("w") for k in d)   # fast weights w0.. (no other key starts with w)

        def numbered(prefix: str) -> tuple[Tensor, ...]:
            return tuple(d[f"{prefix}{i}"] for i in range(count))

        return cls(window_keys=d["ck"], window_values=d["cv"], fast=numbered("w"), norms=numbered("n"),
                   momentum=numbered("m") if "m0" in d else None,
                   pending_keys=d.get("pk"), pending_values=d.get("pv"), pending_lr=d.get("plr"),
                   pending_momentum=d.get("pm"))
