"""LaCTState: everything a block-causal LaCT model needs to continue a stream.

Per layer a LayerState (models/layer_state.py): the fast weights w0/w1/w2 ([batch*lact_heads,
...]), their norms for weight-norm retention, the momentum buffers, the tokens of the
not-yet-complete chunk (applied already, update pending) and the sliding-window attention cache
(last window-1 keys/values). Plus the absolute position and, for ASR, the conv front end's
buffers. Its size does not grow with the stream length. `adapted` holds the per-layer starting
fast weights ([lact_heads, ...]) that `adapt_to_speaker` / `adapt_to_style` left, or None: a
saved state brings a speaker's adaptation back (`model.restore_adaptation(state)`) as well as the
stream. save()/load() write a plain torch file (the same as before LayerState existed), so a
stream can be paused and resumed in another process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from models.layer_state import LayerState


@dataclass
class LaCTState:
    layers: list[LayerState]
    position: int = 0
    frontend: dict[str, torch.Tensor] | None = None
    finished: bool = False
    extra: dict = field(default_factory=dict)
    adapted: list[tuple[torch.Tensor, ...]] | None = None

    @property
    def batch_size(self) -> int:
        return self.layers[0].batch_size if self.layers else 0

    def fast_weights(self, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.layers[layer].fast

    def _map(self, fn) -> "LaCTState":
        return LaCTState(
            layers=[st.map(fn) for st in self.layers],
            position=self.position,
            frontend=None if self.frontend is None else {k: fn(v) for k, v in self.frontend.items()},
            finished=self.finished,
            extra=dict(self.extra),
            adapted=None if self.adapted is None else [tuple(fn(w) for w in f) for f in self.adapted],
        )

    def clone(self) -> "LaCTState":
        return self._map(lambda t: t.detach().clone())

    def detach(self) -> "LaCTState":
        return self._map(lambda t: t.detach())

    def to(self, device: torch.device | str) -> "LaCTState":
        return self._map(lambda t: t.to(device))

    def num_bytes(self) -> int:
        total = sum(t.numel() * t.element_size() for st in self.layers for t in st.tensors())
        if self.frontend is not None:
            total += sum(t.numel() * t.element_size() for t in self.frontend.values())
        if self.adapted is not None:
            total += sum(w.numel() * w.element_size() for f in self.adapted for w in f)
        return total

    def state_dict(self) -> dict:
        s = self.detach()
        return {"layers": [st.to_dict() for st in s.layers], "position": s.position, "frontend": s.frontend,
                "finished": s.finished, "extra": s.extra,
                "adapted": None if s.adapted is None else [list(f) for f in s.adapted]}

    @classmethod
    def from_state_dict(cls, d: dict) -> "LaCTState":
        missing = {"layers", "position", "frontend", "finished"} - set(d)
        if missing:
            raise ValueError(f"not a LaCTState: missing {', '.join(sorted(missing))}")
        adapted = d.get("adapted")
        return cls(layers=[LayerState.from_dict(st) for st in d["layers"]], position=int(d["position"]),
                   frontend=d["frontend"], finished=bool(d["finished"]), extra=dict(d.get("extra") or {}),
                   adapted=None if adapted is None else [tuple(f) for f in adapted])

    def save(self, path: str | Path) -> None:
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "LaCTState":
        return cls.from_state_dict(torch.load(path, map_location=map_location, weights_only=True))
