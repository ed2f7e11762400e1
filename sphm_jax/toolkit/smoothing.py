"""The One-Euro filter for landmark tracks, in numpy, elementwise over any array shape.

Casiez, Roussel, Vogel, "1€ Filter: A Simple Speed-based Low-pass Filter for
Noisy Input in Interactive Systems", CHI 2012: a first-order low-pass filter
x_hat_t = x_hat_{t-1} + alpha(fc, dt) (x_t - x_hat_{t-1}) with
alpha(fc, dt) = 1 / (1 + tau / dt), tau = 1 / (2 pi fc), whose cutoff rises
with the speed: fc = min_cutoff + beta |dx_hat|, where dx_hat is the
derivative (x_t - x_hat_{t-1}) / dt low-passed at d_cutoff. Slow motion is
smoothed hard (no jitter), fast motion lightly (little lag).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np


def _check(min_cutoff, beta, d_cutoff) -> None:
    for name, value in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive frequency in Hz, got {value!r}")
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be non-negative, got {beta!r}")


@dataclasses.dataclass(frozen=True)
class OneEuroParams:
    """Filter parameters; the defaults suit landmarks in pixels at 25-30 fps.

    On the test clip (a face 110 px wide moving 2-3 px per frame) with 1 px noise, beta 0.2
    cuts the jitter by a third and still beats the raw track's error; 0.05 lags behind it.
    """

    min_cutoff: float = 1.0  # Hz, the cutoff at rest: alpha 0.2 at 25 fps
    beta: float = 0.2  # Hz per px/s: the cutoff rises by 0.2 Hz for each px/s of speed
    d_cutoff: float = 1.0  # Hz, of the derivative's own low-pass filter

    def __post_init__(self):
        _check(self.min_cutoff, self.beta, self.d_cutoff)


class OneEuroState(NamedTuple):
    """The filter's memory: the last output x_hat and the filtered derivative dx_hat (per s)."""

    x_hat: np.ndarray
    dx_hat: np.ndarray


def _alpha(cutoff, dt: float):
    tau = 1.0 / (2 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro_init(x0) -> OneEuroState:
    """The state after the first sample x0, which the filter passes through unchanged."""
    x0 = np.array(x0, np.float64)
    return OneEuroState(x0, np.zeros_like(x0))


def one_euro_step(
    state: OneEuroState, x, dt: float, min_cutoff=1.0, beta=0.0, d_cutoff=1.0
) -> tuple[OneEuroState, np.ndarray]:
    """Filters the next sample x, dt seconds after the last: (new state, x_hat) in float64."""
    _check(min_cutoff, beta, d_cutoff)
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive time step in seconds, got {dt!r}")
    x = np.asarray(x, np.float64)
    if x.shape != state.x_hat.shape:
        raise ValueError(f"x has shape {x.shape}, the filter's state {state.x_hat.shape}")
    dx = (x - state.x_hat) / dt
    dx_hat = state.dx_hat + _alpha(d_cutoff, dt) * (dx - state.dx_hat)
    cutoff = min_cutoff + beta * np.abs(dx_hat)
    x_hat = state.x_hat + _alpha(cutoff, dt) * (x - state.x_hat)
    return OneEuroState(x_hat, dx_hat), x_hat


def smooth(sequence, fps: float, **params) -> np.ndarray:
    """One-Euro filters float[T, ...] sampled at `fps`; params override `OneEuroParams`' defaults.

    Returns the input's float dtype (float64 for integers); the first sample passes unchanged.
    """
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be positive, got {fps!r}")
    p = dataclasses.asdict(OneEuroParams(**params))
    sequence = np.asarray(sequence)
    if sequence.ndim == 0 or len(sequence) == 0:
        raise ValueError(f"sequence must be [T, ...] with T >= 1, got shape {sequence.shape}")
    dtype = sequence.dtype if np.issubdtype(sequence.dtype, np.floating) else np.float64
    state = one_euro_init(sequence[0])
    out = [state.x_hat]
    for x in sequence[1:]:
        state, x_hat = one_euro_step(state, x, 1.0 / fps, **p)
        out.append(x_hat)
    return np.stack(out).astype(dtype)
