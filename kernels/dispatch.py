"""One entry point per fast-weight op: Triton on CUDA, the PyTorch reference elsewhere.

Environment override: LACT_KERNELS=triton|torch (unset or "auto": Triton when the inputs are
CUDA tensors and triton imports, otherwise the reference). Forcing Triton on CPU tensors needs
the Triton interpreter (TRITON_INTERPRET=1); that is how the tests run the kernels without a GPU.

PyTorch path (`*_torch`): the references' forward; for backward, swiglu_apply and
swiglu_update_grads have hand-derived backwards and newton_schulz recomputes in backward, so
each op keeps only its inputs for the backward pass (less activation memory; the update's
backward is also ~1.5-2x faster on CPU than autograd's). Tested equal to autograd of the
references. First-order only: no double backward through these ops.

Training: when autograd needs a gradient of a Triton call, the call runs the Triton forward
inside an autograd.Function whose backward recomputes the differentiable reference from the
saved inputs and backpropagates through it (activation-checkpoint style: only the inputs are
kept). Double backward through a Triton call is not supported; the references support it.
"""

import os

import torch
from torch.autograd.function import once_differentiable

from kernels._triton_jit import TRITON_AVAILABLE, interpreter_enabled
from kernels.newton_schulz_kernel import newton_schulz_torch, newton_schulz_triton
from kernels.swiglu_apply_kernel import swiglu_apply_torch, swiglu_apply_triton
from kernels.swiglu_update_kernel import swiglu_update_grads_torch, swiglu_update_grads_triton

BACKENDS = ("auto", "triton", "torch")
_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


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


class _TritonForwardReferenceBackward(torch.autograd.Function):
    """Triton forward; backward through the reference recomputed from the saved inputs."""

    @staticmethod
    def forward(ctx, triton_fn, reference_fn, kwargs, *inputs):
        ctx.reference_fn = reference_fn
        ctx.kwargs = kwargs
        ctx.save_for_backward(*inputs)
        out = triton_fn(*inputs, **kwargs)
        ctx.tuple_output = isinstance(out, tuple)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, *grad_outputs):
        needs = ctx.needs_input_grad[3:]
        inputs = [t.detach().requires_grad_(need) for t, need in zip(ctx.saved_tensors, needs)]
        with torch.enable_grad():
            outs = ctx.reference_fn(*inputs, **ctx.kwargs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        pairs = [(o, g) for o, g in zip(outs, grad_outputs) if g is not None]
        wanted = [t for t, need in zip(inputs, needs) if need]
        grads = torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs],
                                    allow_unused=True)
        it = iter(grads)
        full = [next(it) if need else None for need in needs]
        return (None, None, None, *full)


def _run(triton_fn, reference_fn, inputs, kwargs=None):
    kwargs = kwargs or {}
    if selected_backend(*inputs) == "torch":
        return reference_fn(*inputs, **kwargs)
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        return _TritonForwardReferenceBackward.apply(triton_fn, reference_fn, kwargs, *inputs)
    return triton_fn(*inputs, **kwargs)


def _check_fast_weights(w0, w1, w2):
    if w0.dim() != 3 or w1.dim() != 3 or w2.dim() != 3:
        raise ValueError(f"fast weights must be 3-d [b, dh, d] / [b, d, dh] / [b, dh, d], got "
                         f"{tuple(w0.shape)}, {tuple(w1.shape)}, {tuple(w2.shape)}")
    b, dh, d = w0.shape
    if tuple(w2.shape) != (b, dh, d) or tuple(w1.shape) != (b, d, dh):
        raise ValueError(f"fast weight shapes disagree: w0 {tuple(w0.shape)} (expected [b, dh, d]), "
                         f"w1 {tuple(w1.shape)} (expected [b, d, dh]), w2 {tuple(w2.shape)}")
    return b, dh, d


def _check_tokens(name, t, b, d):
    if t.dim() != 3 or t.shape[0] != b or t.shape[2] != d:
        raise ValueError(f"{name} must be [b={b}, n, d={d}], got {tuple(t.shape)}")


def swiglu_apply(w0: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor,
                 x: torch.Tensor) -> torch.Tensor:
    """f(x) = w1 @ (silu(w0 @ x) * (w2 @ x)) per token: w0 [b,dh,d], w1 [b,d,dh], w2 [b,dh,d],
    x [b,n,d] -> [b,n,d]."""
    b, _, d = _check_fast_weights(w0, w1, w2)
    _check_tokens("x", x, b, d)
    return _run(swiglu_apply_triton, swiglu_apply_torch, (w0, w1, w2, x))


def swiglu_update_grads(w0, w1, w2, k, v, lr0, lr1, lr2):
    """(dw0, dw1, dw2) = sum_t lr_t * d<f(k_t), v_t>/dw: the lr-weighted negative gradient of
    L = -sum_t <f(k_t), v_t>, so w + dw increases <f(k), v>. k, v [b,n,d]; lr* [b,n] (> 0)."""
    b, _, d = _check_fast_weights(w0, w1, w2)
    _check_tokens("k", k, b, d)
    _check_tokens("v", v, b, d)
    n = k.shape[1]
    if v.shape[1] != n:
        raise ValueError(f"k and v token counts differ: {k.shape[1]} vs {v.shape[1]}")
    for name, lr in (("lr0", lr0), ("lr1", lr1), ("lr2", lr2)):
        if tuple(lr.shape) != (b, n):
            raise ValueError(f"{name} must be [b={b}, n={n}], got {tuple(lr.shape)}")
    return _run(swiglu_update_grads_triton, swiglu_update_grads_torch,
                (w0, w1, w2, k, v, lr0, lr1, lr2))


def newton_schulz(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Muon's quintic Newton–Schulz orthogonalisation of g [..., m, n] (same shape and dtype)."""
    if g.dim() < 2:
        raise ValueError(f"newton_schulz needs a matrix or a batch of matrices, got {tuple(g.shape)}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    flat = g.reshape(-1, *g.shape[-2:])
    out = _run(newton_schulz_triton, newton_schulz_torch, (flat,), {"steps": int(steps)})
    return out.reshape(g.shape)
