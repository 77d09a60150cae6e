"""`torch.compiler.disable` without importing Dynamo where nothing compiles.

The decorator imports torch._dynamo (~3 s on a 2-core machine) when a module is imported, and every
Ray Train controller and worker imports the models: a few seconds on every training run. This one
builds the disabled wrapper on the first call made once Dynamo is loaded (torch.compile loads it
before tracing), so processes that never compile never pay for it.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable

import torch


def opaque_to_compile(fn: Callable) -> Callable:
    disabled: Callable | None = None

    @functools.wraps(fn)
    def call(*args):
        nonlocal disabled
        if "torch._dynamo" not in sys.modules:
            return fn(*args)
        if disabled is None:
            disabled = torch.compiler.disable(fn)
        return disabled(*args)

    return call
