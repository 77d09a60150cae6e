"""Every Triton kernel, run by the Triton interpreter on the CPU, against its PyTorch reference.

Not collected directly (no test_ prefix): tests/test_kernels_triton.py runs this file in a fresh
pytest subprocess with TRITON_INTERPRET=1 set before triton is imported, which is the only way
the interpreter takes effect (triton jits its own library functions at import).

fp32 and fp16 only: the interpreter's bf16 tl.dot is wrong. Shapes deliberately miss the block
sizes (32 tokens, 32 hidden rows, power-of-two head dims). Inputs are random numbers from a
seed fixed per test (its id), so a failure repeats; LACT_TEST_SEED=N draws other inputs, and
the seed is in every failure message.
"""

import dataclasses
import os
import zlib
from dataclasses import dataclass

import pytest
import torch

import kernels
import kernels.dispatch as dispatch
from kernels._triton_jit import interpreter_enabled
from kernels.newton_schulz_kernel import (newton_schulz_reference, newton_schulz_step_reference,
                                          newton_schulz_step_triton, newton_schulz_triton)
from kernels.swiglu_apply_kernel import swiglu_apply_reference, swiglu_apply_triton
from kernels.swiglu_update_kernel import swiglu_update_grads_reference, swiglu_update_grads_triton

SHAPES = [  # (b, n, d, dh)
    (2, 37, 20, 45),
    (1, 70, 16, 64),
    (3, 5, 33, 17),
]
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2}   # relative to the reference's max |value|


if not interpreter_enabled():
    raise RuntimeError("run this file through tests/test_kernels_triton.py (needs TRITON_INTERPRET=1 "
                       "set before triton is imported)")


@pytest.fixture(autouse=True)
def _force_triton(monkeypatch):
    monkeypatch.setenv("LACT_KERNELS", "triton")


@dataclass
class Rng:
    """A CPU generator and its seed (printed in failure messages)."""
    seed: int
    gen: torch.Generator


@pytest.fixture
def rng(request):
    seed = zlib.crc32(request.node.nodeid.encode()) ^ int(os.environ.get("LACT_TEST_SEED", "0"))
    return Rng(seed, torch.Generator().manual_seed(seed))


def _inputs(b, n, d, dh, dtype, rng):
    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=rng.gen) * scale).to(dtype)
    w = (r(b, 2 * dh, d, scale=d ** -0.5), r(b, d, dh, scale=dh ** -0.5))   # w02 = [w0; w2], w1
    k, v = r(b, n, d), r(b, n, d)
    lrs = tuple((torch.rand(b, n, generator=rng.gen) + 0.05).to(dtype) for _ in range(3))
    return w, k, v, lrs


def _assert_close(got, ref, dtype, seed, what):
    assert got.dtype == dtype and got.shape == ref.shape, what
    err = (got.float() - ref.float()).abs().max().item()
    scale = ref.float().abs().max().item() + 1e-6
    assert err <= TOLERANCE[dtype] * scale, f"{what}: max err {err:.3g} vs scale {scale:.3g} (seed {seed})"


def _f32(*ts):
    return [t.float() for t in ts]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("shape", SHAPES)
def test_swiglu_apply_kernel(shape, dtype, rng):
    w, x, _, _ = _inputs(*shape, dtype, rng)
    got = swiglu_apply_triton(*w, x)
    ref = swiglu_apply_reference(*_f32(*w, x))
    _assert_close(got, ref, dtype, rng.seed, f"apply {shape}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("shape", SHAPES)
def test_swiglu_update_grads_kernel(shape, dtype, rng):
    w, k, v, lrs = _inputs(*shape, dtype, rng)
    got = swiglu_update_grads_triton(*w, k, v, *lrs)
    ref = swiglu_update_grads_reference(*_f32(*w, k, v, *lrs))
    for name, g, r in zip(("dw02", "dw1"), got, ref):
        _assert_close(g, r, dtype, rng.seed, f"{name} {shape}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("shape", [(2, 40, 20), (1, 20, 36), (2, 16, 16)])
def test_newton_schulz_kernels(shape, dtype, rng):
    g = torch.randn(*shape, generator=rng.gen).to(dtype)
    x = g.float()
    x = (x / x.norm(dim=(-2, -1), keepdim=True)).to(dtype)   # one step on a normalised matrix
    wide = x if shape[1] <= shape[2] else x.transpose(-2, -1)
    _assert_close(newton_schulz_step_triton(wide), newton_schulz_step_reference(wide.float()),
                  dtype, rng.seed, f"one step {shape}")
    # Five steps compound fp16 rounding: a looser bound there, still far below the O(1) values.
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    got, ref = newton_schulz_triton(g, steps=5), newton_schulz_reference(g.float(), steps=5)
    assert got.shape == g.shape and got.dtype == dtype
    err = (got.float() - ref).abs().max().item()
    assert err <= tol, f"5 steps {shape}: max err {err:.3g} (seed {rng.seed})"


def test_dispatcher_runs_the_triton_kernels_when_forced(monkeypatch, rng):
    calls = []

    def spy(name, real):
        return lambda *a, **kw: calls.append(name) or real(*a, **kw)

    for op in ("_APPLY", "_UPDATE"):
        real = getattr(dispatch, op)
        monkeypatch.setattr(dispatch, op, dataclasses.replace(real, triton_forward=spy(op, real.triton_forward)))
    monkeypatch.setattr(dispatch, "newton_schulz_triton", spy("newton_schulz", dispatch.newton_schulz_triton))
    dispatch._newton_schulz_op.cache_clear()          # ops are built on first use of a step count
    w, k, v, lrs = _inputs(2, 9, 16, 24, torch.float32, rng)
    torch.testing.assert_close(kernels.swiglu_apply(*w, k), swiglu_apply_reference(*w, k))
    for got, ref in zip(kernels.swiglu_update_grads(*w, k, v, *lrs),
                        swiglu_update_grads_reference(*w, k, v, *lrs)):
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(kernels.newton_schulz(w[1]), newton_schulz_reference(w[1]),
                               atol=1e-5, rtol=1e-4)
    dispatch._newton_schulz_op.cache_clear()
    assert calls == ["_APPLY", "_UPDATE", "newton_schulz"]


def _grads_through(fn, tensors, weights):
    leaves = [t.clone().requires_grad_(True) for t in tensors]
    outs = fn(*leaves)
    outs = outs if isinstance(outs, tuple) else (outs,)
    loss = sum((o * wgt).sum() for o, wgt in zip(outs, weights))
    return torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("op", ["apply", "update", "newton_schulz"])
def test_triton_calls_backpropagate_like_the_reference(op, rng, monkeypatch):
    w, k, v, lrs = _inputs(1, 35, 18, 40, torch.float32, rng)
    if op == "apply":
        public, reference, tensors = kernels.swiglu_apply, swiglu_apply_reference, (*w, k)
    elif op == "update":
        public, reference, tensors = kernels.swiglu_update_grads, swiglu_update_grads_reference, (*w, k, v, *lrs)
    else:
        public, reference, tensors = kernels.newton_schulz, newton_schulz_reference, (w[1],)
    probe = public(*tensors)
    probe = probe if isinstance(probe, tuple) else (probe,)
    weights = [torch.randn(p.shape, generator=rng.gen) for p in probe]   # random upstream gradient
    got = _grads_through(public, tensors, weights)                  # Triton forward
    monkeypatch.setenv("LACT_KERNELS", "torch")
    ref = _grads_through(reference, tensors, weights)
    for i, (g, r) in enumerate(zip(got, ref)):
        torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-4,
                                   msg=lambda m: f"{op} input {i} (seed {rng.seed}): {m}")


def test_layer_under_bf16_autocast_runs_the_kernels_in_fp32(monkeypatch):
    """Under bf16 autocast the LaCT layer hands the kernels bf16 activations and fp32 fast
    weights; the dispatcher casts them to fp32, so the Triton forward and its hand-derived
    backward agree with the PyTorch path (in the interpreter; bf16 tl.dot is never reached)."""
    from models import LaCTAudioConfig
    from models.lact_layer import LaCTLayer

    torch.manual_seed(3)
    cfg = LaCTAudioConfig(hidden_size=32, num_attention_heads=2, num_lact_heads=2, chunk_size=16,
                          window_size=8, use_muon=False, use_momentum=False)
    layer = LaCTLayer(cfg, causal=False)
    x = torch.randn(2, 24, 32)

    def run(backend):
        monkeypatch.setenv("LACT_KERNELS", backend)
        layer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x)
        y.float().square().mean().backward()                    # outside autocast, like training
        return y.float(), [p.grad.clone() for p in (layer.w0, layer.w1, layer.w2, layer.qkv.weight)]

    y_triton, g_triton = run("triton")
    y_torch, g_torch = run("torch")
    torch.testing.assert_close(y_triton, y_torch, atol=2e-2, rtol=2e-2)   # bf16 output rounding
    for g, r in zip(g_triton, g_torch):
        torch.testing.assert_close(g, r, atol=1e-3, rtol=1e-2)
