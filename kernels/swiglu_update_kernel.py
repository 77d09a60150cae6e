"""Fast-weight update of LaCT: per-token-lr-weighted negative gradient of L = -sum_t <f(k_t), v_t>.

With f(k) = w1 @ (silu(w0 @ k) * (w2 @ k)), gate = w0 k, up = w2 k, hidden = silu(gate) * up:
    dw1 = sum_t lr1_t * v_t hidden_t^T
    dhidden_t = w1^T v_t
    dw0 = sum_t lr0_t * (dhidden_t * up_t * silu'(gate_t)) k_t^T
    dw2 = sum_t lr2_t * (dhidden_t * silu(gate_t)) k_t^T
with silu'(z) = sigmoid(z) * (1 + z * (1 - sigmoid(z))). So w + dw increases <f(k), v>.

Shapes: w02 [b, 2dh, d] (w0 rows :dh, w2 rows dh:), w1 [b, d, dh], k/v [b, n, d],
lr0/lr1/lr2 [b, n] -> (dw02 [b, 2dh, d], dw1 [b, d, dh]). Gate and up, and dw0 and dw2, each
come from one matmul over the fused rows.
`swiglu_update_grads_reference` is differentiable PyTorch (the ground truth of the tests);
`swiglu_update_grads_forward` / `swiglu_update_grads_backward` are the forward and the
hand-derived backward (the outer loop's gradient of the update) the dispatcher wraps in one
autograd.Function for both backends. `swiglu_update_grads_triton` is one fused kernel: a
program owns a block of dh rows of one b, streams all tokens and accumulates its slices of
dw0, dw1, dw2 in registers, so no [n, dh] activation reaches memory and no atomics are needed.
"""

import torch

from kernels._triton_jit import MAX_HEAD_DIM, BLOCK_H, jit, launch_swiglu, tl


def swiglu_update_grads_reference(w02, w1, k, v, lr0, lr1, lr2):
    """The formulas above in plain PyTorch; autograd differentiates them (ground truth)."""
    gate, up = (k @ w02.transpose(1, 2)).chunk(2, dim=-1)   # [b, n, dh] each
    sig = torch.sigmoid(gate)
    silu = gate * sig
    hidden = silu * up
    dhidden = v @ w1                                         # [b, n, dh]
    dgate = dhidden * up * sig * (1 + gate * (1 - sig))
    dup = dhidden * silu
    dw02 = torch.cat([dgate * lr0.unsqueeze(-1), dup * lr2.unsqueeze(-1)], dim=-1).transpose(1, 2) @ k
    dw1 = (v * lr1.unsqueeze(-1)).transpose(1, 2) @ hidden  # [b, d, dh]
    return dw02, dw1


def _silu_and_slope(gate):
    """(sigmoid, silu, 1 - sigmoid, silu') of the gate; silu' = sig + silu * (1 - sig)."""
    sig = torch.sigmoid(gate)
    silu = gate * sig
    one_minus = 1 - sig
    return sig, silu, one_minus, torch.addcmul(sig, silu, one_minus)


def _lr_weighted(dgate, dup, lr0, lr2):
    """[dgate * lr0, dup * lr2] as one [b, n, 2dh] tensor, written in place (no cat)."""
    out = dgate.new_empty(*dgate.shape[:-1], 2 * dgate.shape[-1])
    left, right = out.chunk(2, dim=-1)
    torch.mul(dgate, lr0.unsqueeze(-1), out=left)
    torch.mul(dup, lr2.unsqueeze(-1), out=right)
    return out


def swiglu_update_grads_forward(w02, w1, k, v, lr0, lr1, lr2, keep: bool):
    """((dw02, dw1), saved): saved = (gate_up, dhidden) when `keep` (the backward then skips
    two matmuls); otherwise the backward recomputes them from the inputs."""
    gate_up = torch.bmm(k, w02.transpose(1, 2))              # [b, n, 2dh]
    dhidden = torch.bmm(v, w1)                               # [b, n, dh]
    gate, up = gate_up.chunk(2, dim=-1)
    _, silu, _, dsilu = _silu_and_slope(gate)
    dgate = (dhidden * up).mul_(dsilu)
    dw02 = torch.bmm(_lr_weighted(dgate, dhidden * silu, lr0, lr2).transpose(1, 2), k)
    dw1 = torch.bmm((v * lr1.unsqueeze(-1)).transpose(1, 2), silu * up)
    return (dw02, dw1), ((gate_up, dhidden) if keep else ())


def swiglu_update_grads_backward(inputs, saved, grads, need):
    """Gradients of (w02, w1, k, v, lr0, lr1, lr2) given d loss / d (dw02, dw1). Written with
    in-place and fused (addcmul) ops: on the CPU its cost is the number of passes over
    [b, n, dh] activations, so each product is formed once."""
    w02, w1, k, v, lr0, lr1, lr2 = inputs
    g02, g1 = grads
    g02 = torch.zeros_like(w02) if g02 is None else g02      # [b, 2dh, d]
    g1 = torch.zeros_like(w1) if g1 is None else g1          # [b, d, dh]
    lr0_, lr1_, lr2_ = lr0.unsqueeze(-1), lr1.unsqueeze(-1), lr2.unsqueeze(-1)
    gate_up, dhidden = saved if saved else (torch.bmm(k, w02.transpose(1, 2)), torch.bmm(v, w1))
    gate, up = gate_up.chunk(2, dim=-1)
    sig, silu, one_minus, dsilu = _silu_and_slope(gate)
    dhidden_up = dhidden * up
    dgate = dhidden_up * dsilu                               # the forward's dgate, dup (no lr)
    dup = dhidden * silu
    ga0, ga2 = torch.bmm(k, g02.transpose(1, 2)).chunk(2, dim=-1)    # d loss / d (dgate*lr0), (dup*lr2)
    g_hidden = torch.bmm(v * lr1_, g1)                       # [b, n, dh]
    g_dgate = ga0 * lr0_
    g_dup = ga2 * lr2_
    t = g_dgate * dsilu
    # silu''(gate) = sig (1 - sig) (2 + gate - 2 silu)
    d2silu = (sig * one_minus).mul_(torch.add(gate, silu, alpha=-2).add_(2))
    g_gate_up = torch.empty_like(gate_up)                    # [b, n, 2dh]
    g_gate, g_up = g_gate_up.chunk(2, dim=-1)
    # g_gate = (g_dup * dhidden + g_hidden * up) * silu' + g_dgate * dhidden * up * silu''
    torch.mul(g_dup, dhidden, out=g_gate).addcmul_(g_hidden, up).mul_(dsilu).addcmul_(g_dgate.mul_(dhidden_up), d2silu)
    torch.mul(t, dhidden, out=g_up).addcmul_(g_hidden, silu)
    g_dhidden = (t * up).addcmul_(g_dup, silu)
    out = [None] * 7
    if need[0]:
        out[0] = torch.bmm(g_gate_up.transpose(1, 2), k)
    if need[1]:
        out[1] = torch.bmm(v.transpose(1, 2), g_dhidden)
    if need[2]:
        out[2] = torch.baddbmm(torch.bmm(g_gate_up, w02), _lr_weighted(dgate, dup, lr0, lr2), g02)
    g_v_lr1 = torch.bmm(silu * up, g1.transpose(1, 2)) if (need[3] or need[5]) else None   # [b, n, d]
    if need[3]:
        out[3] = torch.baddbmm(g_v_lr1 * lr1_, g_dhidden, w1.transpose(1, 2))
    if need[4]:
        out[4] = (ga0 * dgate).sum(-1)
    if need[5]:
        out[5] = (g_v_lr1 * v).sum(-1)
    if need[6]:
        out[6] = (ga2 * dup).sum(-1)
    return tuple(out)


@jit
def _accumulate_token_block(acc0, acc1, acc2, kt, vt, lr0, lr1, lr2, w0t, w1s, w2t):
    """One block of tokens' terms added to the program's dw0, dw1, dw2 slices (the formulas above):
    kt, vt [BN, BD]; lr0/lr1/lr2 [BN] fp32; w0t, w2t, w1s [BD, BH]; acc0, acc2 [BH, BD], acc1 [BD, BH]."""
    gate = tl.dot(kt, w0t)                                               # [BN, BH] fp32
    up = tl.dot(kt, w2t)
    dhidden = tl.dot(vt, w1s)
    sig = tl.sigmoid(gate)
    silu = gate * sig
    hidden = silu * up
    dgate = dhidden * up * sig * (1.0 + gate * (1.0 - sig)) * lr0[:, None]
    dup = dhidden * silu * lr2[:, None]
    v_lr = (vt.to(tl.float32) * lr1[:, None]).to(kt.dtype)
    acc0 += tl.dot(tl.trans(dgate.to(kt.dtype)), kt)                     # [BH, BD]
    acc2 += tl.dot(tl.trans(dup.to(kt.dtype)), kt)
    acc1 += tl.dot(tl.trans(v_lr), hidden.to(kt.dtype))                  # [BD, BH]
    return acc0, acc1, acc2


@jit
def _swiglu_update_grads_kernel(
    w0_ptr, w1_ptr, w2_ptr, k_ptr, v_ptr, lr0_ptr, lr1_ptr, lr2_ptr,
    dw0_ptr, dw1_ptr, dw2_ptr,
    n, d, dh,
    s_w0b, s_w0h, s_w0d,
    s_w1b, s_w1d, s_w1h,
    s_w2b, s_w2h, s_w2d,
    s_kb, s_kn, s_kd,
    s_vb, s_vn, s_vd,
    s_l0b, s_l0n, s_l1b, s_l1n, s_l2b, s_l2n,
    s_d0b, s_d0h, s_d0d,
    s_d1b, s_d1d, s_d1h,
    s_d2b, s_d2h, s_d2d,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_H: tl.constexpr,
):
    pid_h = tl.program_id(0)
    b = tl.program_id(1)
    hs = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    cols_d = tl.arange(0, BLOCK_D)
    h_ok = hs < dh
    d_ok = cols_d < d
    wmask = d_ok[:, None] & h_ok[None, :]
    # This program's slices, all as [BD, BH] tiles: w0[hs, :]^T, w2[hs, :]^T, w1[:, hs].
    w0t = tl.load(w0_ptr + b * s_w0b + hs[None, :] * s_w0h + cols_d[:, None] * s_w0d,
                  mask=wmask, other=0.0)
    w2t = tl.load(w2_ptr + b * s_w2b + hs[None, :] * s_w2h + cols_d[:, None] * s_w2d,
                  mask=wmask, other=0.0)
    w1s = tl.load(w1_ptr + b * s_w1b + cols_d[:, None] * s_w1d + hs[None, :] * s_w1h,
                  mask=wmask, other=0.0)
    acc0 = tl.zeros((BLOCK_H, BLOCK_D), dtype=tl.float32)   # dw0[hs, :]
    acc2 = tl.zeros((BLOCK_H, BLOCK_D), dtype=tl.float32)   # dw2[hs, :]
    acc1 = tl.zeros((BLOCK_D, BLOCK_H), dtype=tl.float32)   # dw1[:, hs]
    n_start = 0
    while n_start < n:  # not `for range`: see kernels/README.md (interpreter)
        rows = n_start + tl.arange(0, BLOCK_N)
        row_ok = rows < n
        tmask = row_ok[:, None] & d_ok[None, :]
        kt = tl.load(k_ptr + b * s_kb + rows[:, None] * s_kn + cols_d[None, :] * s_kd,
                     mask=tmask, other=0.0)                                  # [BN, BD]
        vt = tl.load(v_ptr + b * s_vb + rows[:, None] * s_vn + cols_d[None, :] * s_vd,
                     mask=tmask, other=0.0)
        lr0 = tl.load(lr0_ptr + b * s_l0b + rows * s_l0n, mask=row_ok, other=0.0).to(tl.float32)
        lr1 = tl.load(lr1_ptr + b * s_l1b + rows * s_l1n, mask=row_ok, other=0.0).to(tl.float32)
        lr2 = tl.load(lr2_ptr + b * s_l2b + rows * s_l2n, mask=row_ok, other=0.0).to(tl.float32)
        acc0, acc1, acc2 = _accumulate_token_block(acc0, acc1, acc2, kt, vt, lr0, lr1, lr2, w0t, w1s, w2t)
        n_start += BLOCK_N
    out_ty = dw0_ptr.dtype.element_ty
    hmask = h_ok[:, None] & d_ok[None, :]
    tl.store(dw0_ptr + b * s_d0b + hs[:, None] * s_d0h + cols_d[None, :] * s_d0d,
             acc0.to(out_ty), mask=hmask)
    tl.store(dw2_ptr + b * s_d2b + hs[:, None] * s_d2h + cols_d[None, :] * s_d2d,
             acc2.to(out_ty), mask=hmask)
    tl.store(dw1_ptr + b * s_d1b + cols_d[:, None] * s_d1d + hs[None, :] * s_d1h,
             acc1.to(out_ty), mask=wmask)


BLOCK_N = 32


def swiglu_update_grads_triton(w02, w1, k, v, lr0, lr1, lr2):
    b, n, d = k.shape
    if d > MAX_HEAD_DIM:
        return swiglu_update_grads_reference(w02, w1, k, v, lr0, lr1, lr2)
    dh = w1.shape[2]
    dw02, dw1 = torch.empty_like(w02), torch.empty_like(w1)
    launch_swiglu(_swiglu_update_grads_kernel, -(-dh // BLOCK_H), w02, w1,
                  [k, v, lr0, lr1, lr2, dw02[:, :dh], dw1, dw02[:, dh:]], n, BLOCK_N)
    return dw02, dw1
