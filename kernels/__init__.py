"""Fast-weight kernels of the LaCT layer: Triton kernels, each beside its PyTorch reference,
behind one dispatcher (see kernels/dispatch.py and kernels/README.md)."""

from kernels.dispatch import newton_schulz, selected_backend, swiglu_apply, swiglu_update_grads

__all__ = ["swiglu_apply", "swiglu_update_grads", "newton_schulz", "selected_backend"]
