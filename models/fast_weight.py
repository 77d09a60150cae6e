"""The two kinds of fast weight a LaCT layer can hold (config `fast_weight`), and what differs
between them: the learnt initial weights, the layer's inner layout, reading and the update's
gradient. Both are stateless; LaCTLayer.fast_kind picks one by the config's name (so layers
pickled whole, which hold the name, pick it too).

  swiglu  f(x) = w1 (silu(w0 x) * (w2 x)); inside the layer w0 and w2 live as one [b, 2dh, d]
          tensor (gate and up in one matmul, one weight-norm step for both; Muon orthogonalises
          the two halves apart)
  linear  f(x) = W x, one matrix per head; the update W += sum_t lr_t v_t k_t^T is the negative
          gradient of the same inner loss
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kernels import newton_schulz, swiglu_apply, swiglu_update_grads

FastWeights = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def linear_update_grads(k: torch.Tensor, v: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """Negative gradient of -sum_t lr_t <W k_t, v_t> for a linear fast weight.
    k, v [b, n, d]; lr [b, n] -> [b, d, d]."""
    return torch.bmm((v * lr[..., None]).transpose(1, 2), k)


class SwiGLUFastWeight:
    names = ("w0", "w1", "w2")   # the layer's parameters, one learning rate per token each

    def initial(self, heads: int, dim: int, hidden: int) -> tuple[nn.Parameter, ...]:
        """The learnt initial ("slow") weights, drawn in the order the names give."""
        w0 = nn.Parameter(torch.randn(heads, hidden, dim) / math.sqrt(dim))
        w1 = nn.Parameter(torch.randn(heads, dim, hidden) / math.sqrt(hidden))
        w2 = nn.Parameter(torch.randn(heads, hidden, dim) / math.sqrt(dim))
        return w0, w1, w2

    def fuse(self, W: FastWeights) -> tuple[torch.Tensor, ...]:
        """(w0, w1, w2) -> the inner layout (w02 = [w0; w2] rows, w1)."""
        return torch.cat([W[0], W[2]], dim=1), W[1]

    def split(self, W: tuple[torch.Tensor, ...]) -> FastWeights:
        """Inverse of fuse (views, no copy)."""
        dh = W[1].shape[2]
        return W[0][:, :dh], W[1], W[0][:, dh:]

    def apply(self, W: tuple[torch.Tensor, ...], q: torch.Tensor) -> torch.Tensor:
        return swiglu_apply(W[0], W[1], q)

    def update_grads(self, W, k: torch.Tensor, v: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """lr-weighted negative gradients in the inner layout; lr [3, b, n]."""
        return swiglu_update_grads(W[0], W[1], k, v, lr[0], lr[1], lr[2])

    def orthogonalise(self, dws: tuple[torch.Tensor, ...], steps: int) -> tuple[torch.Tensor, ...]:
        """Muon on an update; the fused [w0; w2] update as its two matrices."""
        b, rows, d = dws[0].shape
        w02 = newton_schulz(dws[0].reshape(2 * b, rows // 2, d), steps).reshape(b, rows, d)
        return (w02,) + tuple(newton_schulz(dw, steps) for dw in dws[1:])


class LinearFastWeight:
    names = ("w0",)

    def initial(self, heads: int, dim: int, hidden: int) -> tuple[nn.Parameter, ...]:
        return (nn.Parameter(torch.randn(heads, dim, dim) / math.sqrt(dim)),)

    def fuse(self, W: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return W

    def split(self, W: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return W

    def apply(self, W: tuple[torch.Tensor, ...], q: torch.Tensor) -> torch.Tensor:
        return torch.bmm(q, W[0].transpose(1, 2))

    def update_grads(self, W, k: torch.Tensor, v: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (linear_update_grads(k, v, lr[0]),)

    def orthogonalise(self, dws: tuple[torch.Tensor, ...], steps: int) -> tuple[torch.Tensor, ...]:
        return tuple(newton_schulz(dw, steps) for dw in dws)


FAST_WEIGHT_KINDS = {"swiglu": SwiGLUFastWeight(), "linear": LinearFastWeight()}
