"""The fast branch's output, back in token-major layout: per head and token RMS-normalised (with
the learnt per-dimension weight of the layer's `fast_norm`), scaled by the learnt per-head,
per-token output scale, and the heads joined:

    out[b, t, h*d:(h+1)*d] = rms_norm(fw[b*H + h, t]) * weight * scale[b, t, h]

One autograd.Function. It keeps only its input (and the small per-row 1/rms and the scale); the
plain formula kept two [B, T, D] tensors per layer (the norm's input and its output) and made a
head-major copy on each side.
"""

from __future__ import annotations

import torch

from models.opaque_to_compile import opaque_to_compile


class _FastOutputMerge(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fw, weight, scale, eps: float):
        B, T, H = scale.shape
        d = fw.shape[-1]
        inv_rms = torch.rsqrt(fw.square().mean(-1, keepdim=True) + eps)           # [B*H, T, 1]
        normed = (fw * inv_rms).view(B, H, T, d).transpose(1, 2)                 # [B, T, H, d] view
        out = torch.empty(B, T, H, d, dtype=fw.dtype, device=fw.device)
        torch.mul(normed, weight, out=out).mul_(scale.unsqueeze(-1))
        ctx.save_for_backward(fw, weight, scale, inv_rms)
        return out.view(B, T, H * d)

    @staticmethod
    def backward(ctx, grad):
        fw, weight, scale, inv_rms = ctx.saved_tensors
        B, T, H = scale.shape
        d = fw.shape[-1]
        normed = fw * inv_rms                                                     # [B*H, T, d]
        normed_t = normed.view(B, H, T, d).transpose(1, 2)                        # [B, T, H, d]
        grad4 = grad.view(B, T, H, d)
        grad_scale = (grad4 * normed_t * weight).sum(-1) if ctx.needs_input_grad[2] else None
        grad_weighted = grad4 * scale.unsqueeze(-1)                               # d loss / d (normed * weight)
        grad_weight = (grad_weighted * normed_t).sum((0, 1, 2)) if ctx.needs_input_grad[1] else None
        grad_fw = None
        if ctx.needs_input_grad[0]:
            grad_normed = (grad_weighted * weight).transpose(1, 2).reshape(B * H, T, d)
            along = (grad_normed * normed).mean(-1, keepdim=True)
            grad_fw = (grad_normed - normed * along).mul_(inv_rms)
        return grad_fw, grad_weight, grad_scale, None


@opaque_to_compile   # one opaque call to torch.compile: Dynamo crashed tracing the autograd.Function
def fast_output_merge(fw: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, eps: float | None) -> torch.Tensor:
    """fw [B*H, T, d] fast outputs, weight [d], scale [B, T, H] -> [B, T, H*d]. eps as
    nn.RMSNorm's: None means the dtype's machine epsilon."""
    return _FastOutputMerge.apply(fw, weight, scale, torch.finfo(fw.dtype).eps if eps is None else eps)
