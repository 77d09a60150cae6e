"""The PyTorch references of the fast-weight kernels and the dispatcher (no Triton involved)."""

import pytest
import torch
import torch.nn.functional as F

import kernels
import kernels.dispatch as dispatch
from kernels.newton_schulz_kernel import COEFFICIENTS, newton_schulz_reference
from kernels.swiglu_apply_kernel import swiglu_apply_reference
from kernels.swiglu_update_kernel import swiglu_update_grads_reference


@pytest.fixture(autouse=True)
def _torch_backend(monkeypatch):
    monkeypatch.setenv("LACT_KERNELS", "torch")


def _fast_weights(b, n, d, dh, dtype=torch.float64, gen=None):
    """w02 = [w0; w2] [b, 2dh, d], w1 [b, d, dh], k, v [b, n, d], three lrs [b, n]."""
    def r(*shape, scale=1.0):
        return torch.randn(*shape, dtype=dtype, generator=gen) * scale
    w02, w1 = r(b, 2 * dh, d, scale=d ** -0.5), r(b, d, dh, scale=dh ** -0.5)
    k, v = r(b, n, d), r(b, n, d)
    lrs = [torch.rand(b, n, dtype=dtype, generator=gen) + 0.05 for _ in range(3)]
    return w02, w1, k, v, lrs


def test_apply_is_per_token_swiglu():
    w02, w1, x, _, _ = _fast_weights(3, 7, 5, 9)
    w0, w2 = w02[:, :9], w02[:, 9:]
    out = kernels.swiglu_apply(w02, w1, x)
    for b in range(3):
        for t in range(7):
            expected = w1[b] @ (F.silu(w0[b] @ x[b, t]) * (w2[b] @ x[b, t]))
            torch.testing.assert_close(out[b, t], expected)


def test_update_grads_equal_autograd_of_lr_weighted_inner_loss():
    dh = 13
    w02, w1, k, v, (lr0, lr1, lr2) = _fast_weights(2, 11, 6, dh)
    dw02, dw1 = kernels.swiglu_update_grads(w02, w1, k, v, lr0, lr1, lr2)
    got = {"w0": dw02[:, :dh], "w1": dw1, "w2": dw02[:, dh:]}
    for name, lr in (("w0", lr0), ("w1", lr1), ("w2", lr2)):
        weights = [t.clone().requires_grad_(True) for t in (w02, w1)]
        f = swiglu_apply_reference(*weights, k)
        inner_loss = -(lr.unsqueeze(-1) * f * v).sum()      # L = -sum_t lr_t <f(k_t), v_t>
        g02, g1 = torch.autograd.grad(inner_loss, weights)
        grad = {"w0": g02[:, :dh], "w1": g1, "w2": g02[:, dh:]}[name]
        torch.testing.assert_close(got[name], -grad)         # dw is the NEGATIVE gradient


def test_update_step_increases_alignment():
    w02, w1, k, v, lrs = _fast_weights(2, 16, 8, 16)
    before = (swiglu_apply_reference(w02, w1, k) * v).sum()
    dw02, dw1 = kernels.swiglu_update_grads(w02, w1, k, v, *lrs)
    eps = 1e-3
    after = (swiglu_apply_reference(w02 + eps * dw02, w1 + eps * dw1, k) * v).sum()
    assert after > before


def test_update_grads_are_differentiable_for_the_outer_loop():
    w02, w1, k, v, lrs = _fast_weights(1, 5, 4, 6)
    k.requires_grad_(True)
    lrs[0].requires_grad_(True)
    dw02, dw1 = kernels.swiglu_update_grads(w02, w1, k, v, *lrs)
    (dw02.sum() + dw1.square().sum()).backward()
    assert k.grad is not None and k.grad.abs().sum() > 0
    assert lrs[0].grad is not None and lrs[0].grad.abs().sum() > 0


@pytest.fixture(params=["kept", "recomputed", "kept, a row per block", "kept, a token per block",
                        "recomputed, a token per block"])
def intermediates(request, monkeypatch):
    """Both backward modes: activations kept from the forward (short chunks) or recomputed; and
    the CPU path's cache blocking: whole rows per block, or one row in blocks of tokens."""
    if request.param.startswith("recomputed"):
        monkeypatch.setattr(dispatch, "KEEP_INTERMEDIATES_MAX_TOKENS", 0)
    if request.param.endswith("a row per block"):      # the tests' n * 2dh is at most 9 * 22
        monkeypatch.setattr(dispatch, "BLOCK_ELEMENTS", 200)
    if request.param.endswith("a token per block"):
        monkeypatch.setattr(dispatch, "BLOCK_ELEMENTS", 1)
    return request.param


@pytest.mark.parametrize("used", [(0, 1), (1,), (0,)])
def test_hand_derived_update_backward_equals_autograd_of_the_reference(used, intermediates):
    w02, w1, k, v, lrs = _fast_weights(2, 9, 5, 11)
    inputs = [t.clone().requires_grad_(True) for t in (w02, w1, k, v, *lrs)]
    upstream = [torch.randn_like(w) for w in (w02, w1)]

    def outer_loss(fn):
        outs = fn(*inputs)
        return sum((outs[i] * upstream[i]).sum() for i in used)   # unused outputs get no grad

    expected = torch.autograd.grad(outer_loss(swiglu_update_grads_reference), inputs, allow_unused=True)
    got = torch.autograd.grad(outer_loss(kernels.swiglu_update_grads), inputs, allow_unused=True)
    for name, g, e, x in zip(("w02", "w1", "k", "v", "lr0", "lr1", "lr2"), got, expected, inputs):
        e = torch.zeros_like(x) if e is None else e       # e.g. lr0 does not reach dw1
        g = torch.zeros_like(x) if g is None else g
        torch.testing.assert_close(g, e, msg=lambda m: f"grad of {name}: {m}")


def test_hand_derived_update_backward_passes_gradcheck(intermediates):
    w02, w1, k, v, lrs = _fast_weights(1, 4, 3, 5)
    inputs = [t.clone().requires_grad_(True) for t in (w02, w1, k, v, *lrs)]
    assert torch.autograd.gradcheck(kernels.swiglu_update_grads, inputs)


@pytest.mark.parametrize("op", ["apply", "newton_schulz"])
def test_hand_derived_backwards_equal_autograd_of_the_reference(op, intermediates):
    w02, w1, x, _, _ = _fast_weights(2, 9, 5, 11)
    if op == "apply":
        fast, reference, tensors = kernels.swiglu_apply, swiglu_apply_reference, (w02, w1, x)
    else:
        fast, reference, tensors = kernels.newton_schulz, newton_schulz_reference, (w02,)
    inputs = [t.clone().requires_grad_(True) for t in tensors]
    upstream = torch.randn_like(reference(*inputs))
    expected = torch.autograd.grad((reference(*inputs) * upstream).sum(), inputs)
    got = torch.autograd.grad((fast(*inputs) * upstream).sum(), inputs)
    for i, (g, e) in enumerate(zip(got, expected)):
        torch.testing.assert_close(g, e, msg=lambda m: f"{op} input {i}: {m}")
    if op == "apply":
        assert torch.autograd.gradcheck(fast, inputs)


def test_mixed_dtypes_compute_in_the_promoted_dtype_with_autocast_off():
    """bf16 activations beside fp32 fast weights (what bf16 autocast hands the ops): the op
    runs in fp32 (= the reference on upcast inputs) and gradients reach both dtypes."""
    w02, w1, k, v, lrs = _fast_weights(2, 9, 8, 12, dtype=torch.float32)
    k16, v16 = k.bfloat16().requires_grad_(True), v.bfloat16()
    w02.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dw02, dw1 = kernels.swiglu_update_grads(w02, w1, k16, v16, *lrs)
        out = kernels.swiglu_apply(w02, w1, k16)
    assert dw02.dtype == dw1.dtype == out.dtype == torch.float32
    ref02, ref1 = swiglu_update_grads_reference(w02, w1, k16.float(), v16.float(), *lrs)
    torch.testing.assert_close(dw02, ref02)
    torch.testing.assert_close(out, swiglu_apply_reference(w02, w1, k16.float()))
    (dw02.sum() + out.square().sum()).backward()           # outside autocast, as training does
    assert k16.grad.dtype == torch.bfloat16 and w02.grad.dtype == torch.float32
    assert torch.isfinite(k16.grad.float()).all() and k16.grad.abs().sum() > 0


def _scalar_quintic(s, steps):
    a, b, c = COEFFICIENTS
    for _ in range(steps):
        s = a * s + b * s ** 3 + c * s ** 5
    return s


@pytest.mark.parametrize("shape", [(3, 6, 10), (2, 12, 5), (1, 8, 8)])
def test_newton_schulz_acts_on_singular_values_only(shape):
    # For g = U diag(s) V^T the iteration returns U diag(p(s / ||g||_F)) V^T, p the quintic.
    g = torch.randn(*shape, dtype=torch.float64)
    u, s, vh = torch.linalg.svd(g, full_matrices=False)
    scaled = s / (g.norm(dim=(-2, -1), keepdim=True).squeeze(-1) + 1e-7)
    expected = u @ torch.diag_embed(_scalar_quintic(scaled, 5)) @ vh
    out = kernels.newton_schulz(g, steps=5)
    assert out.shape == g.shape and out.dtype == g.dtype
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_newton_schulz_orthogonalises_and_keeps_dtype():
    g = torch.randn(4, 16, 48, dtype=torch.float16)
    out = kernels.newton_schulz(g)
    assert out.dtype == torch.float16
    sv = torch.linalg.svdvals(out.float())
    assert sv.min() > 0.5 and sv.max() < 1.3, sv   # Muon's iteration lands in about [0.7, 1.2]


def test_dispatcher_rejects_bad_shapes_and_backend(monkeypatch):
    w02, w1, k, v, lrs = _fast_weights(2, 5, 4, 6)
    with pytest.raises(ValueError, match="w02"):
        kernels.swiglu_apply(w02, w1.transpose(1, 2), k)
    with pytest.raises(ValueError, match="x must be"):
        kernels.swiglu_apply(w02, w1, k[..., :3])
    with pytest.raises(ValueError, match="lr1"):
        kernels.swiglu_update_grads(w02, w1, k, v, lrs[0], lrs[1][:, :3], lrs[2])
    monkeypatch.setenv("LACT_KERNELS", "cuda")
    with pytest.raises(ValueError, match="LACT_KERNELS"):
        kernels.swiglu_apply(w02, w1, k)


def test_dispatcher_picks_reference_on_cpu_and_refuses_triton_without_interpreter(monkeypatch):
    x = torch.randn(2, 3, 4)
    monkeypatch.delenv("LACT_KERNELS")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert kernels.selected_backend(x) == "torch"
    monkeypatch.setenv("LACT_KERNELS", "triton")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        kernels.selected_backend(x)


def test_backward_uses_the_forwards_blocks_when_the_thread_count_changes(monkeypatch):
    """The blocks' size follows torch.get_num_threads(); a backward run after the count changed
    must still match its forward's saved activations."""
    monkeypatch.setattr(dispatch, "BLOCK_ELEMENTS", 100)      # 1 thread: 4 rows of 9*22 values apart
    w02, w1, k, v, lrs = _fast_weights(4, 9, 5, 11)
    inputs = [t.clone().requires_grad_(True) for t in (w02, w1, k, v, *lrs)]
    upstream = [torch.randn_like(w) for w in (w02, w1)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        outs = kernels.swiglu_update_grads(*inputs)
        torch.set_num_threads(4)                               # now 2 rows a block
        got = torch.autograd.grad(sum((o * u).sum() for o, u in zip(outs, upstream)), inputs)
    finally:
        torch.set_num_threads(threads)
    reference = swiglu_update_grads_reference(*inputs)
    expected = torch.autograd.grad(sum((o * u).sum() for o, u in zip(reference, upstream)), inputs)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
