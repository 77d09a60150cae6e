"""Triton kernels are jitted lazily, once per interpreter mode.

`triton.jit` decides at decoration time whether a kernel is compiled or run by the CPU
interpreter (`TRITON_INTERPRET=1`, read through `triton.knobs.runtime.interpret`). Jitting at
first call instead of at import lets a process (e.g. a test) turn the interpreter on after
`kernels` was imported. Kernel functions are therefore written undecorated and must not call
other jitted helpers.
"""

try:
    import triton
    import triton.language as tl
    TRITON_AVAILABLE = True
except ImportError:  # e.g. macOS, where no triton wheel exists: only the references run
    triton = None

    class tl:  # noqa: N801 - stands in for triton.language in kernel signatures only
        constexpr = None

    TRITON_AVAILABLE = False

_cache: dict = {}


def interpreter_enabled() -> bool:
    return TRITON_AVAILABLE and bool(triton.knobs.runtime.interpret)


def jit_for_current_mode(fn):
    key = (fn, interpreter_enabled())
    if key not in _cache:
        _cache[key] = triton.jit(fn)
    return _cache[key]


def next_block(size: int, minimum: int = 16) -> int:
    """Power-of-two tile covering `size` (tl.dot needs every tile side >= 16)."""
    return max(minimum, 1 << (max(int(size), 1) - 1).bit_length())


__all__ = ["TRITON_AVAILABLE", "triton", "tl", "jit_for_current_mode", "interpreter_enabled",
           "next_block"]
