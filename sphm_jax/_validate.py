"""Small input checks shared by the pure modules; each error names the argument and its value."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np


def is_concrete(x) -> bool:
    """True outside jit: values can be inspected and bad ones raised on."""
    return not isinstance(x, jax.core.Tracer)


def check_hw(shape, name: str = "shape") -> tuple[int, int]:
    """(H, W) as two positive ints, or a ValueError naming `name`."""
    if (
        not isinstance(shape, Sequence)
        or len(shape) != 2
        or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape)
    ):
        raise ValueError(f"{name} must be (H, W) with two positive ints, got {shape!r}")
    return int(shape[0]), int(shape[1])
