"""Optional Triton import and the launch code shared by the kernel files.

Where no triton wheel exists (e.g. macOS) the kernel definitions still import, as plain Python
functions, and the dispatcher only ever runs the references.

The Triton interpreter (`TRITON_INTERPRET=1`) is fixed when triton is first imported: triton's
own library functions (tl.zeros, tl.sigmoid, ...) are jitted at that moment. A process that
wants the interpreter must set the variable before anything imports triton (the tests run the
kernels in a subprocess for that reason).
"""

try:
    import triton
    import triton.language as tl
    TRITON_AVAILABLE = True
    jit = triton.jit
except ImportError:
    triton = None

    class tl:  # noqa: N801 - stands in for triton.language in kernel signatures only
        constexpr = None

    TRITON_AVAILABLE = False

    def jit(fn):
        return fn


# Decided once, when the kernels below are jitted (see the module docstring).
_INTERPRETER_AT_IMPORT = TRITON_AVAILABLE and bool(triton.knobs.runtime.interpret)

# Largest head dim the fused SwiGLU kernels keep in one register tile; larger heads use the reference.
MAX_HEAD_DIM = 256
BLOCK_H = 32     # hidden rows per tile of the SwiGLU kernels


def interpreter_enabled() -> bool:
    """Whether this process's Triton kernels run in the CPU interpreter."""
    return _INTERPRETER_AT_IMPORT


def next_block(size: int, minimum: int = 16) -> int:
    """Power-of-two tile covering `size` (tl.dot needs every tile side >= 16)."""
    return max(minimum, 1 << (max(int(size), 1) - 1).bit_length())


def launch(kernel, grid, tensors, scalars, **meta) -> None:
    """kernel[grid](*tensors, *scalars, <every tensor's strides, in order>, **meta): the
    argument layout every kernel of this package declares."""
    kernel[grid](*tensors, *scalars, *(s for t in tensors for s in t.stride()), **meta)


def launch_swiglu(kernel, programs: int, w02, w1, tensors, n: int, block_n: int) -> None:
    """Launch a SwiGLU kernel on grid (programs, b) with arguments (w0, w1, w2, *tensors, n, d,
    dh, strides...): w0 and w2 are views of w02's halves, so the kernels never see the fused
    layout. `tensors` are the kernel's remaining tensor arguments in its order."""
    b, two_dh, d = w02.shape
    dh = two_dh // 2
    launch(kernel, (programs, b), [w02[:, :dh], w1, w02[:, dh:], *tensors], [n, d, dh],
           BLOCK_N=block_n, BLOCK_D=next_block(d), BLOCK_H=BLOCK_H)

__all__ = ["TRITON_AVAILABLE", "jit", "tl", "interpreter_enabled", "next_block", "launch",
           "launch_swiglu", "MAX_HEAD_DIM", "BLOCK_H"]
