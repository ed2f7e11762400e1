"""Heatmap codec of the paper: continuous encoding (Eq. 3) and local soft-argmax decoding (Eq. 4).

Points are (x, y) in heatmap pixels with pixel centres at integer coordinates;
heatmaps are channels-last, float[..., H, W, K]. The quantized encodings, plain
argmax, FAN's +-0.25 heuristic, global soft-argmax and DARK are kept beside the
paper's method as the baselines and peers it is compared with.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from sphm_jax._validate import check_hw, is_concrete

QUANTIZE = (None, "round", "floor")
# The sigma with the lowest roundtrip NME at window 5, tau 10 (docs/experiments.md, Fig. 3).
DEFAULT_SIGMA = 2.0
METHODS = ("local_softargmax", "argmax", "argmax_quarter", "global_softargmax", "dark")

# DARK's distribution modulation blurs with OpenCV's 11x11 kernel, whose sigma is 2.
DARK_BLUR_SIGMA = 2.0


def _check_points(points) -> jax.Array:
    points = jnp.asarray(points)
    if points.ndim < 2 or points.shape[-1] != 2:
        raise ValueError(f"points must have shape [..., K, 2], got {points.shape}")
    if not jnp.issubdtype(points.dtype, jnp.floating):
        points = points.astype(jnp.float32)
    if is_concrete(points) and not bool(jnp.all(jnp.isfinite(points))):
        bad = np.argwhere(~np.isfinite(np.asarray(points)).all(-1))
        raise ValueError(
            f"points contain non-finite coordinates at index {bad[0].tolist()} "
            f"(of {bad.shape[0]} such points); mask them instead of encoding them"
        )
    return points.astype(jnp.float32)


def encode(points, shape, sigma, quantize=None) -> jax.Array:
    """Draws one unnormalised Gaussian (peak 1 at the point) per landmark.

    Args:
        points: float[..., K, 2], (x, y) in heatmap pixels.
        shape: (H, W) of the heatmap.
        sigma: standard deviation in heatmap pixels (> 0).
        quantize: None for the paper's continuous centre (Eq. 3), or "round" /
            "floor" for the quantized centres of the baselines (Eq. 2).

    Returns:
        float32[..., H, W, K]. Under jit a non-finite point draws an all-zero map
        (it cannot raise there); called eagerly it raises ValueError.
    """
    h, w = check_hw(shape)
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be one of {QUANTIZE}, got {quantize!r}")
    if is_concrete(sigma) and not (np.ndim(sigma) == 0 and float(sigma) > 0):
        raise ValueError(f"sigma must be a positive scalar, got {sigma!r}")
    points = _check_points(points)
    if quantize == "round":
        points = jnp.round(points)
    elif quantize == "floor":
        points = jnp.floor(points)
    finite = jnp.all(jnp.isfinite(points), axis=-1)  # [..., K]
    points = jnp.where(finite[..., None], points, 0.0)
    x, y = points[..., 0], points[..., 1]  # [..., K]
    scale = -0.5 / jnp.square(jnp.asarray(sigma, jnp.float32))
    # The Gaussian is separable: two 1-D profiles and one outer product.
    gx = jnp.exp(scale * jnp.square(jnp.arange(w, dtype=jnp.float32)[:, None] - x[..., None, :]))
    gy = jnp.exp(scale * jnp.square(jnp.arange(h, dtype=jnp.float32)[:, None] - y[..., None, :]))
    gx = jnp.where(finite[..., None, :], gx, 0.0)
    return gy[..., :, None, :] * gx[..., None, :, :]


def _check_heatmaps(hm) -> jax.Array:
    hm = jnp.asarray(hm)
    if hm.ndim < 3:
        raise ValueError(f"heatmaps must have shape [..., H, W, K], got {hm.shape}")
    if not jnp.issubdtype(hm.dtype, jnp.floating):
        raise ValueError(f"heatmaps must be floating point, got dtype {hm.dtype}")
    return hm.astype(jnp.float32)


def _argmax_hw(maps) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Row-major first maximum of each [H, W] map: (x, y) int32, and whether the map holds NaN.

    Built from max + compare + min because jnp.argmax lowers to a slow
    variadic reduce on XLA's CPU backend.
    """
    h, w = maps.shape[-2:]
    flat = maps.reshape(*maps.shape[:-2], h * w)
    peak = jnp.max(flat, axis=-1)
    iota = jnp.arange(h * w, dtype=jnp.int32)
    idx = jnp.min(jnp.where(flat == peak[..., None], iota, h * w - 1), axis=-1)
    # XLA's CPU max may drop NaN, so look for it explicitly.
    return idx % w, idx // w, jnp.any(jnp.isnan(flat), axis=-1)


def _gather(maps, x, y):
    """maps[..., y, x] for integer index arrays x, y of shape [..., M] (clipped into the map)."""
    h, w = maps.shape[-2:]
    flat = maps.reshape(*maps.shape[:-2], h * w)
    idx = jnp.clip(y, 0, h - 1) * w + jnp.clip(x, 0, w - 1)
    return jnp.take_along_axis(flat, idx, axis=-1)


def _nan_where_undefined(coords, has_nan):
    # A map holding NaN has no maximum: say so instead of returning some pixel.
    return jnp.where(has_nan[..., None], jnp.nan, coords)


def _argmax(maps, **_):
    x, y, has_nan = _argmax_hw(maps)
    return _nan_where_undefined(jnp.stack([x, y], -1).astype(jnp.float32), has_nan)


def _argmax_quarter(maps, **_):
    """FAN's heuristic: a quarter pixel toward the larger neighbour, interior peaks only."""
    h, w = maps.shape[-2:]
    x, y, has_nan = _argmax_hw(maps)
    xs, ys = x[..., None], y[..., None]
    dx = _gather(maps, xs + 1, ys) - _gather(maps, xs - 1, ys)
    dy = _gather(maps, xs, ys + 1) - _gather(maps, xs, ys - 1)
    interior = (x > 0) & (x < w - 1) & (y > 0) & (y < h - 1)
    shift = 0.25 * jnp.sign(jnp.concatenate([dx, dy], -1))
    coords = jnp.stack([x, y], -1).astype(jnp.float32) + jnp.where(interior[..., None], shift, 0.0)
    return _nan_where_undefined(coords, has_nan)


def _window_offsets(window):
    r = window // 2
    oy, ox = jnp.meshgrid(jnp.arange(-r, r + 1), jnp.arange(-r, r + 1), indexing="ij")
    return ox.reshape(-1), oy.reshape(-1)


def _first_max(values, axis):
    """Index of the first maximum along `axis`, from compares and adds only (no argmax)."""
    n = values.shape[axis]
    peak = jax.lax.optimization_barrier(jnp.max(values, axis=axis, keepdims=True))
    iota = jnp.arange(n, dtype=jnp.float32).reshape((n,) + (1,) * (values.ndim - 1 - axis))
    # Not-maximal entries are pushed past the end, so the min is the first maximal index.
    index = jnp.min(iota + (values < peak).astype(jnp.float32) * n, axis=axis)
    return jnp.minimum(index, n - 1).astype(jnp.int32)


def _has_nan(maps):
    """bool[N, K]: which maps [N, H, W, K] hold a NaN (XLA's CPU reduce-max drops NaN).

    A sum keeps NaN and runs at the speed of a max; only where it is NaN (NaN,
    or +inf meeting -inf) is the exact but slower element-wise test run.
    """
    suspect = jnp.isnan(jnp.sum(maps, axis=(1, 2)))
    return jax.lax.cond(
        jnp.any(suspect), lambda: jnp.any(jnp.isnan(maps), axis=(1, 2)), lambda: suspect
    )


def _local_softargmax(hm, window, temperature):
    """Eq. 4 on channels-last maps [N, H, W, K]: soft-argmax over the window around the maximum.

    Window pixels outside the map take no part (weight zero): the window is
    never wrapped or shifted at the borders. The maximum is found row by row
    (K kept innermost, no transpose) and only the winning row is read again.
    """
    n, h, w, k = hm.shape
    maps = jax.lax.stop_gradient(hm)
    # The barrier keeps XLA from fusing (and so recomputing) the row maxima into their consumers.
    row_max = jax.lax.optimization_barrier(jnp.max(maps, axis=2))  # [N, H, K]
    y = _first_max(row_max, 1)  # [N, K]
    x = _first_max(jnp.take_along_axis(maps, y[:, None, None, :], axis=1)[:, 0], 1)
    has_nan = _has_nan(maps)
    ox, oy = _window_offsets(window)
    px, py = x[:, None, :] + ox[:, None], y[:, None, :] + oy[:, None]  # [N, window**2, K]
    inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    index = jnp.clip(py, 0, h - 1) * w + jnp.clip(px, 0, w - 1)
    values = jnp.take_along_axis(hm.reshape(n, h * w, k), index, axis=1)
    weights = jax.nn.softmax(jnp.where(inside, temperature * values, -jnp.inf), axis=1)
    offset = jnp.stack([jnp.sum(weights * ox[:, None], 1), jnp.sum(weights * oy[:, None], 1)], -1)
    coords = jnp.stack([x, y], -1).astype(jnp.float32) + offset
    return _nan_where_undefined(coords, has_nan)


def _global_softargmax(maps, temperature, **_):
    """Soft-argmax over the whole map (Sun et al.), the global peer of Eq. 4."""
    h, w = maps.shape[-2:]
    weights = jax.nn.softmax(temperature * maps.reshape(*maps.shape[:-2], h * w), axis=-1)
    weights = weights.reshape(maps.shape)
    x = jnp.sum(weights * jnp.arange(w, dtype=jnp.float32), axis=(-2, -1))
    y = jnp.sum(weights * jnp.arange(h, dtype=jnp.float32)[:, None], axis=(-2, -1))
    return jnp.stack([x, y], -1)


def _gaussian_blur(maps, sigma):
    """Separable Gaussian blur with edge padding, rescaled to keep each map's maximum (DARK)."""
    r = int(math.ceil(3 * sigma))
    k = jnp.exp(-0.5 * jnp.square(jnp.arange(-r, r + 1, dtype=jnp.float32) / sigma))
    k = k / jnp.sum(k)
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    flat = jnp.pad(flat, ((0, 0), (0, 0), (r, r), (r, r)), mode="edge")
    dn = ("NCHW", "OIHW", "NCHW")
    hp = jax.lax.Precision.HIGHEST
    flat = jax.lax.conv_general_dilated(
        flat, k.reshape(1, 1, -1, 1), (1, 1), "VALID", dimension_numbers=dn, precision=hp
    )
    flat = jax.lax.conv_general_dilated(
        flat, k.reshape(1, 1, 1, -1), (1, 1), "VALID", dimension_numbers=dn, precision=hp
    )
    blurred = flat.reshape(*lead, *maps.shape[-2:])
    old_max = jnp.max(maps, axis=(-2, -1), keepdims=True)
    new_max = jnp.max(blurred, axis=(-2, -1), keepdims=True)
    return blurred * old_max / jnp.where(new_max > 0, new_max, 1.0)


def _dark(maps, **_):
    """DARK (Zhang et al., CVPR 2020): blur, log, one Newton step from the maximum.

    The step is skipped at the border (no neighbours) and where the log-map is
    not concave there, and it is clipped to one pixel.
    """
    h, w = maps.shape[-2:]
    x, y, has_nan = _argmax_hw(maps)
    logm = jnp.log(jnp.maximum(_gaussian_blur(maps, DARK_BLUR_SIGMA), 1e-10))
    ox = jnp.array([0, 1, -1, 0, 0, 1, 1, -1, -1])
    oy = jnp.array([0, 0, 0, 1, -1, 1, -1, 1, -1])
    v = _gather(logm, x[..., None] + ox, y[..., None] + oy)
    c, xp, xm, yp, ym, pp, pm, mp, mm = (v[..., i] for i in range(9))
    grad = jnp.stack([0.5 * (xp - xm), 0.5 * (yp - ym)], -1)
    dxx, dyy = xp - 2 * c + xm, yp - 2 * c + ym
    dxy = 0.25 * (pp - pm - mp + mm)
    det = dxx * dyy - dxy * dxy
    concave = (dxx < 0) & (det > 0)
    safe_det = jnp.where(concave, det, 1.0)
    # offset = -Hessian^-1 grad, with the 2x2 inverse written out.
    step_x = -(dyy * grad[..., 0] - dxy * grad[..., 1]) / safe_det
    step_y = -(-dxy * grad[..., 0] + dxx * grad[..., 1]) / safe_det
    step = jnp.clip(jnp.stack([step_x, step_y], -1), -1.0, 1.0)
    interior = (x > 0) & (x < w - 1) & (y > 0) & (y < h - 1) & concave
    coords = jnp.stack([x, y], -1).astype(jnp.float32) + jnp.where(interior[..., None], step, 0.0)
    return _nan_where_undefined(coords, has_nan)


_DECODERS = {
    "local_softargmax": _local_softargmax,
    "argmax": _argmax,
    "argmax_quarter": _argmax_quarter,
    "global_softargmax": _global_softargmax,
    "dark": _dark,
}


def decode(hm, method="local_softargmax", window=5, temperature=10.0) -> jax.Array:
    """Reads sub-pixel landmark coordinates from heatmaps.

    Args:
        hm: float[..., H, W, K] heatmaps.
        method: "local_softargmax" (Eq. 4, the paper), "argmax", "argmax_quarter"
            (FAN's +-0.25 toward the larger neighbour), "global_softargmax" or
            "dark" (Taylor refinement of the blurred log-map).
        window: odd side of the local soft-argmax window (Fig. 1's d).
        temperature: tau of Eq. 4; multiplies the heatmap before the softmax.

    Returns:
        float32[..., K, 2], (x, y) in heatmap pixels. A map holding NaN decodes to NaN.
        "local_softargmax" and "global_softargmax" are differentiable in hm.
    """
    if method not in _DECODERS:
        raise ValueError(f"unknown decode method {method!r}; choose one of {METHODS}")
    hm = _check_heatmaps(hm)
    h, w = hm.shape[-3:-1]
    if not (isinstance(window, (int, np.integer)) and window >= 1 and window % 2 == 1):
        raise ValueError(f"window must be a positive odd int, got {window!r}")
    if window > min(h, w):
        raise ValueError(f"window {window} is larger than the {h}x{w} heatmap")
    if is_concrete(temperature) and not (np.ndim(temperature) == 0 and float(temperature) > 0):
        raise ValueError(f"temperature must be a positive scalar, got {temperature!r}")
    if method == "local_softargmax":
        # Channels-last all the way: no transpose of the maps, the hot path of evaluation.
        coords = _local_softargmax(hm.reshape(-1, *hm.shape[-3:]), window, temperature)
        return coords.reshape(*hm.shape[:-3], hm.shape[-1], 2)
    # [..., K, H, W]: one map per landmark is the natural unit of work of the others.
    maps = jnp.moveaxis(hm, -1, -3)
    return _DECODERS[method](maps, window=window, temperature=temperature)
