"""Weight-norm retention of the LaCT update: every row of a fast weight is rescaled to the norm
its row had before the first update, out = w * n / (||w|| + eps), per row.

Written as one autograd.Function with a hand-derived backward because autograd of the plain
formula walks the [b, rows, d] weight eight times (norm, divide, multiply, and their backwards);
this takes three passes each way, which on the CPU is a tenth of a LaCT training step.
With s = n / (||w|| + eps) and c = <g, w> per row:
    d out / d w:  g * s - w * c * n / ((||w|| + eps)^2 ||w||)
    d out / d n:  c / (||w|| + eps)
"""

from __future__ import annotations

import torch

from models.opaque_to_compile import opaque_to_compile

EPS = 1e-5


class _RetainRowNorms(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
        length = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
        ctx.save_for_backward(w, norms, length)
        return w * (norms / (length + EPS))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        w, norms, length = ctx.saved_tensors
        denom = length + EPS
        dot = (grad.unsqueeze(-2) @ w.unsqueeze(-1)).squeeze(-1)        # <g, w> per row, no temporary
        grad_w = grad_norms = None
        if ctx.needs_input_grad[0]:
            coef = -dot * norms / (denom * denom) / length.clamp(min=1e-30)   # a zero row has dot 0
            grad_w = torch.addcmul(grad * (norms / denom), w, coef)
        if ctx.needs_input_grad[1]:
            grad_norms = dot / denom
        return grad_w, grad_norms


@opaque_to_compile   # one opaque call to torch.compile: Dynamo crashed tracing the autograd.Function
def retain_row_norms(w: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """w [..., rows, d], norms [..., rows, 1] -> w with each row rescaled to its norm."""
    return _RetainRowNorms.apply(w, norms)
