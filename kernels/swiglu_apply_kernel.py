"""Apply SwiGLU fast weights to tokens: f(x) = w1 @ (silu(w0 @ x) * (w2 @ x)), per token.

Shapes (b = batch * lact_heads): w02 [b, 2dh, d] holds w0 (rows :dh, the gate) and w2 (rows dh:,
the up projection) in one tensor so gate and up come from one matmul; w1 [b, d, dh];
x [b, n, d] -> [b, n, d].

`swiglu_apply_reference` is plain, differentiable PyTorch (the ground truth of the tests).
`swiglu_apply_forward` / `swiglu_apply_backward` are the forward and the hand-derived backward
the dispatcher wraps in one autograd.Function for both backends. `swiglu_apply_triton` is one
fused Triton kernel: a program owns a block of tokens of one b and walks the hidden dim dh in
blocks, so the [n, dh] hidden activations never reach memory.
"""

import torch
import torch.nn.functional as F

from kernels._triton_jit import MAX_HEAD_DIM, jit, launch_swiglu, tl


def swiglu_apply_reference(w02: torch.Tensor, w1: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    gate, up = (x @ w02.transpose(1, 2)).chunk(2, dim=-1)   # [b, n, dh] each
    return (F.silu(gate) * up) @ w1.transpose(1, 2)         # [b, n, d]


def swiglu_apply_forward(w02, w1, x, keep: bool):
    """(out, saved): saved = (gate_up,) when `keep` (the backward then skips one matmul)."""
    gate_up = torch.bmm(x, w02.transpose(1, 2))             # [b, n, 2dh]
    gate, up = gate_up.chunk(2, dim=-1)
    out = torch.bmm(F.silu(gate) * up, w1.transpose(1, 2))
    return out, ((gate_up,) if keep else ())


def swiglu_apply_backward(inputs, saved, grad_out, need):
    """Gradients of (w02, w1, x) from the inputs (and the forward's gate_up, if kept)."""
    w02, w1, x = inputs
    gate_up = saved[0] if saved else torch.bmm(x, w02.transpose(1, 2))
    gate, up = gate_up.chunk(2, dim=-1)
    sig = torch.sigmoid(gate)
    silu = gate * sig
    g_hidden = torch.bmm(grad_out, w1)                       # [b, n, dh]
    g_gate_up = torch.empty_like(gate_up)                    # [b, n, 2dh], filled in place
    g_gate, g_up = g_gate_up.chunk(2, dim=-1)
    torch.mul(g_hidden, silu, out=g_up)
    # silu'(gate) = sig + silu * (1 - sig)
    torch.addcmul(sig, silu, 1 - sig, out=g_gate).mul_(g_hidden).mul_(up)
    g_w02 = torch.bmm(g_gate_up.transpose(1, 2), x) if need[0] else None
    g_w1 = torch.bmm(grad_out.transpose(1, 2), silu * up) if need[1] else None
    g_x = torch.bmm(g_gate_up, w02) if need[2] else None
    return g_w02, g_w1, g_x


@jit
def _swiglu_apply_kernel(
    w0_ptr, w1_ptr, w2_ptr, x_ptr, out_ptr,
    n, d, dh,
    s_w0b, s_w0h, s_w0d,
    s_w1b, s_w1d, s_w1h,
    s_w2b, s_w2h, s_w2d,
    s_xb, s_xn, s_xd,
    s_ob, s_on, s_od,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_H: tl.constexpr,
):
    pid_n = tl.program_id(0)
    b = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cols_d = tl.arange(0, BLOCK_D)
    row_ok = rows < n
    d_ok = cols_d < d

    x = tl.load(x_ptr + b * s_xb + rows[:, None] * s_xn + cols_d[None, :] * s_xd,
                mask=row_ok[:, None] & d_ok[None, :], other=0.0)          # [BN, BD]
    acc = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    h_start = 0
    while h_start < dh:  # not `for range`: see kernels/README.md (interpreter)
        hs = h_start + tl.arange(0, BLOCK_H)
        h_ok = hs < dh
        # w0/w2 rows hs as [BD, BH] tiles (transposed view via strides).
        wmask = d_ok[:, None] & h_ok[None, :]
        w0t = tl.load(w0_ptr + b * s_w0b + hs[None, :] * s_w0h + cols_d[:, None] * s_w0d,
                      mask=wmask, other=0.0)
        w2t = tl.load(w2_ptr + b * s_w2b + hs[None, :] * s_w2h + cols_d[:, None] * s_w2d,
                      mask=wmask, other=0.0)
        gate = tl.dot(x, w0t)                                             # [BN, BH] fp32
        up = tl.dot(x, w2t)
        hidden = gate * tl.sigmoid(gate) * up
        # w1 columns hs as a [BH, BD] tile.
        w1t = tl.load(w1_ptr + b * s_w1b + hs[:, None] * s_w1h + cols_d[None, :] * s_w1d,
                      mask=h_ok[:, None] & d_ok[None, :], other=0.0)
        acc += tl.dot(hidden.to(w1t.dtype), w1t)
        h_start += BLOCK_H
    tl.store(out_ptr + b * s_ob + rows[:, None] * s_on + cols_d[None, :] * s_od,
             acc.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & d_ok[None, :])


BLOCK_N = 32


def swiglu_apply_triton(w02: torch.Tensor, w1: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    b, n, d = x.shape
    if d > MAX_HEAD_DIM:
        return swiglu_apply_reference(w02, w1, x)
    out = torch.empty_like(x)
    launch_swiglu(_swiglu_apply_kernel, -(-n // BLOCK_N), w02, w1, [x, out], n, BLOCK_N)
    return out
