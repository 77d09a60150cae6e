"""Optional Triton import shared by the kernel files.

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


def interpreter_enabled() -> bool:
    """Whether this process's Triton kernels run in the CPU interpreter."""
    return _INTERPRETER_AT_IMPORT


def next_block(size: int, minimum: int = 16) -> int:
    """Power-of-two tile covering `size` (tl.dot needs every tile side >= 16)."""
    return max(minimum, 1 << (max(int(size), 1) - 1).bit_length())


__all__ = ["TRITON_AVAILABLE", "jit", "tl", "interpreter_enabled", "next_block"]
