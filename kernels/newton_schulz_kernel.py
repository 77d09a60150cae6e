"""Newton–Schulz orthogonalisation (Muon's quintic iteration) of fast-weight updates.

For g [b, m, n]: work on the wide orientation (m <= n), scale to unit Frobenius norm, then per
step X <- a X + (b A + c A A) X with A = X X^T and (a, b, c) = (3.4445, -4.7750, 2.0315).

`newton_schulz_reference` is differentiable PyTorch computed in float32; `newton_schulz_backward`
recomputes it in the backward (the dispatcher uses it for both backends). The Triton path keeps
X in the input dtype (fp32 accumulation inside every product) and runs each step as three
launches of one batched "out = alpha*C + beta*(P @ Q)" kernel, reading transposes through
strides, so no transposed copy is ever made.
"""

import torch

from kernels._triton_jit import jit, launch, next_block, tl

COEFFICIENTS = (3.4445, -4.7750, 2.0315)
EPS = 1e-7


def newton_schulz_step_reference(x: torch.Tensor) -> torch.Tensor:
    a, b, c = COEFFICIENTS
    gram = x @ x.transpose(-2, -1)
    poly = b * gram + c * (gram @ gram)
    return a * x + poly @ x


def _normalised_wide(g: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, bool]:
    x = g.to(dtype)
    transposed = x.shape[-2] > x.shape[-1]
    if transposed:
        x = x.transpose(-2, -1)
    norm = x.float().norm(dim=(-2, -1), keepdim=True)
    return (x.float() / (norm + EPS)).to(dtype), transposed


def newton_schulz_reference(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    x, transposed = _normalised_wide(g, torch.float32)
    for _ in range(steps):
        x = newton_schulz_step_reference(x)
    if transposed:
        x = x.transpose(-2, -1)
    return x.to(g.dtype)


def newton_schulz_backward(inputs, saved, grad_out, need, steps: int):
    """Gradient of g: the reference recomputed with a graph and backpropagated, so only g is
    kept between forward and backward (not the 3*steps intermediate matrices)."""
    g = inputs[0].detach().requires_grad_(True)
    with torch.enable_grad():
        # A scalar objective, not grad_outputs=grad_out: the latter makes autograd import
        # torch.fx.experimental.symbolic_shapes (sympy), 5-30 s on first use here.
        objective = (newton_schulz_reference(g, steps) * grad_out).sum()
    (grad,) = torch.autograd.grad(objective, g)
    return (grad,)


@jit
def _bmm_epilogue_kernel(
    p_ptr, q_ptr, c_ptr, out_ptr,
    M, N, K, alpha, beta,
    s_pb, s_pm, s_pk,
    s_qb, s_qk, s_qn,
    s_cb, s_cm, s_cn,
    s_ob, s_om, s_on,
    HAS_C: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    b = tl.program_id(2)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    k_start = 0
    while k_start < K:  # not `for range`: see kernels/README.md (interpreter)
        rk = k_start + tl.arange(0, BLOCK_K)
        k_ok = rk < K
        p = tl.load(p_ptr + b * s_pb + rm[:, None] * s_pm + rk[None, :] * s_pk,
                    mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        q = tl.load(q_ptr + b * s_qb + rk[:, None] * s_qk + rn[None, :] * s_qn,
                    mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        acc += tl.dot(p, q)
        k_start += BLOCK_K
    acc = acc * beta
    omask = m_ok[:, None] & n_ok[None, :]
    if HAS_C:
        c = tl.load(c_ptr + b * s_cb + rm[:, None] * s_cm + rn[None, :] * s_cn,
                    mask=omask, other=0.0)
        acc += alpha * c.to(tl.float32)
    tl.store(out_ptr + b * s_ob + rm[:, None] * s_om + rn[None, :] * s_on,
             acc.to(out_ptr.dtype.element_ty), mask=omask)


def _bmm_epilogue(p: torch.Tensor, q: torch.Tensor, c: torch.Tensor | None,
                  alpha: float, beta: float) -> torch.Tensor:
    """out = alpha * c + beta * (p @ q) for batched 3-d p [b, M, K], q [b, K, N]."""
    bsz, m, kdim = p.shape
    n = q.shape[-1]
    out = torch.empty((bsz, m, n), dtype=p.dtype, device=p.device)
    block_m = min(64, next_block(m))
    block_n = min(64, next_block(n))
    block_k = min(32, next_block(kdim))
    grid = ((m + block_m - 1) // block_m, (n + block_n - 1) // block_n, bsz)
    c_arg = c if c is not None else out
    launch(_bmm_epilogue_kernel, grid, [p, q, c_arg, out], [m, n, kdim, float(alpha), float(beta)],
           HAS_C=c is not None, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k)
    return out


def newton_schulz_step_triton(x: torch.Tensor) -> torch.Tensor:
    a, b, c = COEFFICIENTS
    gram = _bmm_epilogue(x, x.transpose(-2, -1), None, 0.0, 1.0)
    poly = _bmm_epilogue(gram, gram, gram, b, c)
    return _bmm_epilogue(poly, x, x, a, 1.0)


def newton_schulz_triton(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    x, transposed = _normalised_wide(g, g.dtype)
    for _ in range(steps):
        x = newton_schulz_step_triton(x)
    if transposed:
        x = x.transpose(-2, -1)
    return x.contiguous()
