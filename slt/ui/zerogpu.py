"""Hugging Face ZeroGPU: GPU entry points are wrapped with `spaces.GPU` on a ZeroGPU Space, untouched elsewhere.

On ZeroGPU hardware a Space holds no GPU between requests: a function decorated with `spaces.GPU` is given one
for the length of its call (at most `duration` seconds; shorter durations queue ahead). The Space runtime sets
`SPACES_ZERO_GPU`; only then is the `spaces` package (preinstalled there, not a dependency of this project)
imported, so local runs, tests and other hardware never import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def on_zero_gpu() -> bool:
    """Whether this process runs on a ZeroGPU Space (the Space runtime sets SPACES_ZERO_GPU)."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() not in ("", "0", "false", "no")


def gpu_entry(duration: int = 60) -> Callable[[F], F]:
    """Decorator for a function that runs the models: `spaces.GPU(duration=...)` on ZeroGPU, else the function."""

    def wrap(fn: F) -> F:
        if not on_zero_gpu():
            return fn
        import spaces  # only on a ZeroGPU Space, where the runtime provides it

        return spaces.GPU(duration=duration)(fn)

    return wrap
