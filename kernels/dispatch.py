"""One entry point per fast-weight op: Triton on CUDA, the PyTorch reference elsewhere.

Environment override: LACT_KERNELS=triton|torch (unset or "auto": Triton when the inputs are
CUDA tensors and triton imports, otherwise the reference). Forcing Triton on CPU tensors needs
the Triton interpreter (TRITON_INTERPRET=1); that is how the tests run the kernels without a GPU.

Dtypes: every op computes in one dtype, its inputs' promoted dtype, with autocast off. Under
bf16 autocast the LaCT layer hands these ops bf16 activations beside fp32 fast weights; they
are cast to fp32 here (the Triton kernels need one dtype, and a bf16 fast-weight step would
round away updates smaller than 0.4 % of a weight). Gradients flow back through the casts.

Training: when autograd needs a gradient, both backends run inside one autograd.Function whose
backward is the op's hand-derived backward (swiglu_apply, swiglu_update_grads) or a recomputed
reference (newton_schulz). For chunks of at most KEEP_INTERMEDIATES_MAX_TOKENS tokens the PyTorch
forward keeps its gate/up (and dhidden) activations for the backward, which then skips those
matmuls; longer chunks keep only the inputs and recompute (activation memory stays O(inputs)).
The Triton forward keeps only the inputs. First-order only: no double backward through these
ops (the references support it).

CPU cache blocking: the PyTorch forward and backward of the SwiGLU ops are a few batched matmuls
and ~40 elementwise ops on [b, n, 2dh] activations, independent per row b and, but for sums over
tokens, per token. On a whole batch those activations outgrow the core's L2 cache and every
elementwise op streams from L3 or memory. So the PyTorch path runs on blocks whose activations
hold about BLOCK_ELEMENTS values: several whole rows for short chunks (the demo: the op is 2x
faster), one row in blocks of tokens for long ones (weight-shaped results add up over the token
blocks; the backward's temporaries shrink to the block's size).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Callable

import torch
from torch.autograd.function import once_differentiable

from kernels._triton_jit import TRITON_AVAILABLE, interpreter_enabled
from kernels.newton_schulz_kernel import newton_schulz_backward, newton_schulz_reference, newton_schulz_triton
from kernels.swiglu_apply_kernel import swiglu_apply_backward, swiglu_apply_forward, swiglu_apply_triton
from kernels.swiglu_update_kernel import (swiglu_update_grads_backward, swiglu_update_grads_forward,
                                          swiglu_update_grads_triton)

BACKENDS = ("auto", "triton", "torch")
_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Chunks up to this many tokens keep their activations for the backward (see the docstring).
KEEP_INTERMEDIATES_MAX_TOKENS = 512
# Values per [rows, n, 2dh] activation in one cache block of the PyTorch path, per intra-op
# thread (each core has its own L2 cache; see the docstring).
BLOCK_ELEMENTS = 128 * 1024


def selected_backend(*tensors: torch.Tensor) -> str:
    """'triton' or 'torch' for a call on these tensors, honouring LACT_KERNELS."""
    forced = os.environ.get("LACT_KERNELS", "auto").strip().lower() or "auto"
    if forced not in BACKENDS:
        raise ValueError(f"LACT_KERNELS={forced!r} is not one of {', '.join(BACKENDS)}")
    if forced == "torch":
        return "torch"
    on_cuda = all(t.is_cuda for t in tensors)
    usable = TRITON_AVAILABLE and all(t.dtype in _TRITON_DTYPES for t in tensors)
    if forced == "triton":
        if not TRITON_AVAILABLE:
            raise RuntimeError("LACT_KERNELS=triton but triton is not installed")
        if not usable:
            raise RuntimeError("LACT_KERNELS=triton supports float32/float16/bfloat16 inputs, got "
                               + ", ".join(sorted({str(t.dtype) for t in tensors})))
        if not on_cuda and not interpreter_enabled():
            raise RuntimeError("LACT_KERNELS=triton on CPU tensors needs TRITON_INTERPRET=1 "
                               "(the Triton interpreter); use CUDA tensors or LACT_KERNELS=torch")
        return "triton"
    return "triton" if on_cuda and usable else "torch"


@dataclass(frozen=True)
class _Op:
    torch_forward: Callable     # (*inputs, keep) -> (outputs, saved activations)
    triton_forward: Callable    # (*inputs) -> outputs
    backward: Callable          # (inputs, saved, grad(s), needs_input_grad) -> input grads
    # SwiGLU ops: inputs are (w02, w1, then tensors with tokens in dim 1); the PyTorch path runs
    # on cache-sized blocks of rows or tokens (see the docstring).
    blocked: bool = False
    sums_tokens: bool = False   # outputs are sums over tokens (the update), else one per token


def _blocks(op: _Op, inputs: tuple) -> list[tuple[slice, slice]]:
    """(rows, tokens) blocks for the PyTorch path: whole rows while a row's [n, 2dh] activations
    fit in BLOCK_ELEMENTS, else one row at a time in token blocks. One block when not blocked."""
    rows = inputs[0].shape[0]
    tokens = inputs[2].shape[1] if len(inputs) > 2 else 0
    if not op.blocked or inputs[0].is_cuda:               # a GPU wants one large launch
        return [(slice(0, rows), slice(0, tokens))]
    width = inputs[0].shape[1]                             # 2dh
    budget = BLOCK_ELEMENTS * torch.get_num_threads()
    if tokens * width <= budget:
        step = budget // max(tokens * width, 1)
        return [(slice(r, min(r + step, rows)), slice(0, tokens)) for r in range(0, rows, step)]
    step = max(1, budget // width)
    return [(slice(r, r + 1), slice(t, min(t + step, tokens))) for r in range(rows) for t in range(0, tokens, step)]


def _part(inputs: tuple, block: tuple[slice, slice]) -> tuple:
    rows, tokens = block
    return tuple(t[rows] if i < 2 else t[rows, tokens] for i, t in enumerate(inputs))


def _combine(parts: list, summed, dim: int):
    """Join per-block results (tensors, or tuples of tensors / None): summed positions add up,
    the others are concatenated along `dim`."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], torch.Tensor):
        return functools.reduce(torch.Tensor.add_, parts) if summed[0] else torch.cat(parts, dim)
    return tuple(None if p[0] is None else
                 functools.reduce(torch.Tensor.add_, p) if add else torch.cat(p, dim)
                 for p, add in zip(zip(*parts), summed))


def _join(blocks: list, parts: list, summed):
    """Per-block results -> whole-batch results: token blocks of a row first, then rows."""
    by_rows: list[tuple[slice, list]] = []
    for (rows, _), part in zip(blocks, parts):
        if by_rows and by_rows[-1][0] == rows:
            by_rows[-1][1].append(part)
        else:
            by_rows.append((rows, [part]))
    joined = [_combine(group, summed, dim=1) for _, group in by_rows]
    return _combine(joined, [False] * len(summed), dim=0)


def _torch_forward(op: _Op, inputs: tuple, keep: bool, blocks: list):
    """(outputs, saved) of the PyTorch forward, block by block; saved holds every block's
    activations in order (the backward gets the same blocks)."""
    outs, saved = [], []
    if len(blocks) == 1:
        return op.torch_forward(*inputs, keep=keep)
    for block in blocks:
        out, kept = op.torch_forward(*_part(inputs, block), keep=keep)
        outs.append(out)
        saved.extend(kept)
    return _join(blocks, outs, [op.sums_tokens] * 2), tuple(saved)


def _torch_backward(op: _Op, inputs: tuple, saved: tuple, grads, need, blocks: list):
    if len(blocks) == 1:
        return op.backward(inputs, saved, grads, need)
    per_block = len(saved) // len(blocks)
    parts = []
    for i, block in enumerate(blocks):
        rows, tokens = block
        if op.sums_tokens:      # the update's outputs are weight-shaped: rows only
            block_grads = tuple(None if g is None else g[rows] for g in grads)
        else:                   # apply: one output row per token
            block_grads = grads[rows, tokens]
        parts.append(op.backward(_part(inputs, block), saved[i * per_block:(i + 1) * per_block],
                                 block_grads, need))
    # Gradients of the weights (inputs 0 and 1) add up over token blocks; the others are per token.
    return _join(blocks, parts, [i < 2 for i in range(len(inputs))])


class _FastWeightFunction(torch.autograd.Function):
    """Either backend's forward; the op's own backward from the saved inputs (+ activations)."""

    @staticmethod
    def forward(ctx, op, backend, keep, *inputs):
        blocks = _blocks(op, inputs)
        if backend == "triton":
            out, saved = op.triton_forward(*inputs), ()
        else:
            out, saved = _torch_forward(op, inputs, keep, blocks)
        # the backward runs on the forward's blocks (their size follows the thread count, which
        # may change in between)
        ctx.op, ctx.num_inputs, ctx.blocks = op, len(inputs), blocks
        ctx.save_for_backward(*inputs, *saved)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        tensors = ctx.saved_tensors
        inputs, saved = tensors[:ctx.num_inputs], tensors[ctx.num_inputs:]
        with torch.autocast(inputs[0].device.type, enabled=False):
            out = _torch_backward(ctx.op, inputs, saved, grads if len(grads) > 1 else grads[0],
                                  ctx.needs_input_grad[3:], ctx.blocks)
        return (None, None, None, *out)


def _run(op: _Op, inputs: tuple, tokens: int = 0):
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in inputs))
    inputs = tuple(t.to(dtype) for t in inputs)            # no-op when the dtypes agree
    backend = selected_backend(*inputs)
    with torch.autocast(inputs[0].device.type, enabled=False):
        if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
            return _FastWeightFunction.apply(op, backend, tokens <= KEEP_INTERMEDIATES_MAX_TOKENS, *inputs)
        if backend == "triton":
            return op.triton_forward(*inputs)
        return _torch_forward(op, inputs, False, _blocks(op, inputs))[0]


_APPLY = _Op(swiglu_apply_forward, swiglu_apply_triton, swiglu_apply_backward, blocked=True)
_UPDATE = _Op(swiglu_update_grads_forward, swiglu_update_grads_triton, swiglu_update_grads_backward,
              blocked=True, sums_tokens=True)


@functools.cache
def _newton_schulz_op(steps: int) -> _Op:
    return _Op(lambda g, keep: (newton_schulz_reference(g, steps), ()),
               functools.partial(newton_schulz_triton, steps=steps),
               functools.partial(newton_schulz_backward, steps=steps))


def _check_fast_weights(w02, w1):
    if w02.dim() != 3 or w1.dim() != 3:
        raise ValueError(f"fast weights must be 3-d w02 [b, 2dh, d] / w1 [b, d, dh], got "
                         f"{tuple(w02.shape)}, {tuple(w1.shape)}")
    b, d, dh = w1.shape
    if tuple(w02.shape) != (b, 2 * dh, d):
        raise ValueError(f"fast weight shapes disagree: w02 {tuple(w02.shape)} (expected [b, 2dh, d] = "
                         f"{[b, 2 * dh, d]} for w1 {tuple(w1.shape)} = [b, d, dh])")
    return b, d


def _check_tokens(name, t, b, d):
    if t.dim() != 3 or t.shape[0] != b or t.shape[2] != d:
        raise ValueError(f"{name} must be [b={b}, n, d={d}], got {tuple(t.shape)}")


def swiglu_apply(w02: torch.Tensor, w1: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """f(x) = w1 @ (silu(w0 @ x) * (w2 @ x)) per token: w02 = [w0; w2] [b,2dh,d], w1 [b,d,dh],
    x [b,n,d] -> [b,n,d]."""
    b, d = _check_fast_weights(w02, w1)
    _check_tokens("x", x, b, d)
    return _run(_APPLY, (w02, w1, x), x.shape[1])


def swiglu_update_grads(w02, w1, k, v, lr0, lr1, lr2):
    """(dw02, dw1) = sum_t lr_t * d<f(k_t), v_t>/dw (lr0 for the w0 rows of dw02, lr2 for its
    w2 rows): the lr-weighted negative gradient of L = -sum_t <f(k_t), v_t>, so w + dw increases
    <f(k), v>. k, v [b,n,d]; lr* [b,n] (> 0)."""
    b, d = _check_fast_weights(w02, w1)
    _check_tokens("k", k, b, d)
    _check_tokens("v", v, b, d)
    n = k.shape[1]
    if v.shape[1] != n:
        raise ValueError(f"k and v token counts differ: {k.shape[1]} vs {v.shape[1]}")
    for name, lr in (("lr0", lr0), ("lr1", lr1), ("lr2", lr2)):
        if tuple(lr.shape) != (b, n):
            raise ValueError(f"{name} must be [b={b}, n={n}], got {tuple(lr.shape)}")
    return _run(_UPDATE, (w02, w1, k, v, lr0, lr1, lr2), n)


def newton_schulz(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Muon's quintic Newton–Schulz orthogonalisation of g [..., m, n] (same shape and dtype)."""
    if g.dim() < 2:
        raise ValueError(f"newton_schulz needs a matrix or a batch of matrices, got {tuple(g.shape)}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    flat = g.reshape(-1, *g.shape[-2:])
    return _run(_newton_schulz_op(int(steps)), (flat,)).reshape(g.shape)
