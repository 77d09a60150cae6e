"""The fast branch's query/key feature map: per-channel affine, SiLU, split into LaCT heads and
L2-normalised per head and token (arXiv 2505.23884's q/k treatment):

    unit_rows(heads(silu(x * scale + offset)))

One autograd.Function instead of five autograd nodes. It saves only its input (a view of the
layer's qkv projection, which the attention path keeps anyway) and its output (which the
fast-weight ops keep), and recomputes the rest in the backward: autograd of the plain formula
would keep two more [B, T, D] tensors per call (the affine's output and the head-major copy),
four per LaCT layer, which is what made a long LaCT input use more memory than full attention.
"""

from __future__ import annotations

import torch

from models.opaque_to_compile import opaque_to_compile

EPS = 1e-6   # as F.normalize's default eps: rows shorter than this are divided by EPS instead


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, H*d] -> [B*H, T, d] (a copy, head-major)."""
    B, T, D = t.shape
    return t.view(B, T, heads, D // heads).transpose(1, 2).reshape(B * heads, T, D // heads)


class _FastFeatureMap(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale, offset, heads: int):
        rows = _heads(torch.nn.functional.silu(torch.addcmul(offset, x, scale)), heads)
        inv_norm = torch.linalg.vector_norm(rows, dim=-1, keepdim=True).clamp_min(EPS).reciprocal()
        out = rows.mul_(inv_norm)
        ctx.heads = heads
        ctx.save_for_backward(x, scale, offset, out, inv_norm)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, scale, offset, out, inv_norm = ctx.saved_tensors
        B, T, D = x.shape
        # unit rows: d out / d rows = inv_norm (I - out out^T) where the norm was not clamped
        along = (grad * out).sum(-1, keepdim=True) * (inv_norm < 1.0 / EPS)
        grad_rows = (grad - out * along).mul_(inv_norm)
        grad_silu = grad_rows.view(B, ctx.heads, T, D // ctx.heads).transpose(1, 2).reshape(B, T, D)
        grad_affine = torch.ops.aten.silu_backward(grad_silu, torch.addcmul(offset, x, scale))
        grad_x = grad_affine * scale if ctx.needs_input_grad[0] else None
        grad_scale = (grad_affine * x).sum((0, 1)) if ctx.needs_input_grad[1] else None
        grad_offset = grad_affine.sum((0, 1)) if ctx.needs_input_grad[2] else None
        return grad_x, grad_scale, grad_offset, None


@opaque_to_compile   # one opaque call to torch.compile: Dynamo crashed tracing the autograd.Function
def fast_feature_map(x: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, heads: int) -> torch.Tensor:
    """x [B, T, D], scale/offset [D] -> unit-norm rows [B*heads, T, D/heads]."""
    return _FastFeatureMap.apply(x, scale, offset, heads)
