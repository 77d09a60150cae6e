"""Apply SwiGLU fast weights to tokens: f(x) = w1 @ (silu(w0 @ x) * (w2 @ x)), per token.

Shapes (b = batch * lact_heads): w0 [b, dh, d], w1 [b, d, dh], w2 [b, dh, d], x [b, n, d] -> [b, n, d].

`swiglu_apply_reference` is plain, differentiable PyTorch. `swiglu_apply_triton` is one fused
Triton kernel: a program owns a block of tokens of one b and walks the hidden dim dh in blocks,
so the [n, dh] hidden activations never reach memory.
"""



import torch
import torch.nn.functional as F

from kernels._triton_jit import jit, next_block, tl


def swiglu_apply_reference(w0: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor,
                           x: torch.Tensor) -> torch.Tensor:
    gate = x @ w0.transpose(1, 2)          # [b, n, dh]
    up = x @ w2.transpose(1, 2)            # [b, n, dh]
    return (F.silu(gate) * up) @ w1.transpose(1, 2)   # [b, n, d]


class _SwiGLUApply(torch.autograd.Function):
    """Reference forward; hand-derived backward that keeps only the inputs and recomputes
    gate/up (2 extra matmuls) instead of holding 4 [b, n, dh] activations per call."""

    @staticmethod
    def forward(ctx, w0, w1, w2, x):
        ctx.save_for_backward(w0, w1, w2, x)
        return swiglu_apply_reference(w0, w1, w2, x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        w0, w1, w2, x = ctx.saved_tensors
        gate = x @ w0.transpose(1, 2)
        up = x @ w2.transpose(1, 2)
        sig = torch.sigmoid(gate)
        silu = gate * sig
        g_hidden = grad_out @ w1                                 # [b, n, dh]
        g_gate = g_hidden * up * (sig * (1 + gate * (1 - sig)))  # silu'(gate)
        g_up = g_hidden * silu
        need = ctx.needs_input_grad
        g_w0 = g_gate.transpose(1, 2) @ x if need[0] else None
        g_w1 = grad_out.transpose(1, 2) @ (silu * up) if need[1] else None
        g_w2 = g_up.transpose(1, 2) @ x if need[2] else None
        g_x = g_gate @ w0 + g_up @ w2 if need[3] else None
        return g_w0, g_w1, g_w2, g_x


def swiglu_apply_torch(w0, w1, w2, x):
    """The PyTorch path the dispatcher runs: reference forward, memory-light backward."""
    return _SwiGLUApply.apply(w0, w1, w2, x)


# Largest head dim the fused kernel keeps in one register tile; larger heads use the reference.
MAX_HEAD_DIM = 256


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


def swiglu_apply_triton(w0: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor,
                        x: torch.Tensor) -> torch.Tensor:
    b, n, d = x.shape
    dh = w0.shape[1]
    if d > MAX_HEAD_DIM:
        return swiglu_apply_reference(w0, w1, w2, x)
    out = torch.empty_like(x)
    block_n, block_h = 32, 32
    block_d = next_block(d)
    grid = ((n + block_n - 1) // block_n, b)
    _swiglu_apply_kernel[grid](
        w0, w1, w2, x, out, n, d, dh,
        *w0.stride(), *w1.stride(), *w2.stride(), *x.stride(), *out.stride(),
        BLOCK_N=block_n, BLOCK_D=block_d, BLOCK_H=block_h,
    )
    return out
