"""Affine geometry on points and images, in one coordinate convention.

Points are (x, y) with pixel centres at integer coordinates (OpenCV, and
kornia with align_corners=True). An affine matrix is float[..., 2, 3] and maps
source coordinates to destination coordinates: dst(p) = src(M^-1 p). Every
builder broadcasts over leading batch dims of its arguments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sphm_jax._validate import check_hw

# Crop side / longer side of a tight face box: the face about 220 px of a 256 crop (§5.1).
CROP_SCALE = 256.0 / 220.0


def _f32(x) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def _affine(a, b, c, d, e, f) -> jax.Array:
    """[[a, b, c], [d, e, f]] with each entry broadcast over batch dims."""
    entries = jnp.broadcast_arrays(*map(_f32, (a, b, c, d, e, f)))
    return jnp.stack(entries, -1).reshape(*entries[0].shape, 2, 3)


def _check_matrix(matrix) -> jax.Array:
    matrix = _f32(matrix)
    if matrix.ndim < 2 or matrix.shape[-2:] != (2, 3):
        raise ValueError(f"affine matrix must have shape [..., 2, 3], got {matrix.shape}")
    return matrix


def identity(batch_shape=()) -> jax.Array:
    return jnp.broadcast_to(jnp.eye(2, 3, dtype=jnp.float32), (*batch_shape, 2, 3))


def translation(tx, ty) -> jax.Array:
    return _affine(1.0, 0.0, tx, 0.0, 1.0, ty)


def scale(sx, sy=None, center=(0.0, 0.0)) -> jax.Array:
    """Scales by (sx, sy) about `center` (x, y); sy defaults to sx."""
    sy = sx if sy is None else sy
    cx, cy = _f32(center)[..., 0], _f32(center)[..., 1]
    return _affine(sx, 0.0, cx - sx * cx, 0.0, sy, cy - sy * cy)


def rotation(degrees, center=(0.0, 0.0)) -> jax.Array:
    """Rotates by `degrees` about `center`; positive is counter-clockwise on screen (y down), as OpenCV."""
    t = jnp.deg2rad(_f32(degrees))
    cos, sin = jnp.cos(t), jnp.sin(t)
    cx, cy = _f32(center)[..., 0], _f32(center)[..., 1]
    return _affine(cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)


def hflip(width) -> jax.Array:
    """Mirrors x in an image `width` pixels wide: x -> width - 1 - x (pixel centres stay centres)."""
    return _affine(-1.0, 0.0, _f32(width) - 1.0, 0.0, 1.0, 0.0)


def crop(center, size, out_size) -> jax.Array:
    """Maps the square of side `size` centred at `center` (x, y) onto an out_size x out_size image."""
    s = out_size / _f32(size)
    c = _f32(center)
    # The square's centre goes to the output's centre, (out_size - 1) / 2 in pixel-centre coordinates.
    mid = (out_size - 1) / 2.0
    return _affine(s, 0.0, mid - s * c[..., 0], 0.0, s, mid - s * c[..., 1])


def tight_box(points, visible=None):
    """(x_min, y_min, x_max, y_max) of the visible points, float32[..., 4].

    numpy in, numpy out (the dataset builders and the synthetic faces, which run in forked
    workers where JAX must not); otherwise jax.
    """
    xp = np if isinstance(points, np.ndarray) and not isinstance(visible, jax.Array) else jnp
    points = xp.asarray(points, xp.float32)
    vis = xp.ones(points.shape[:-1], bool) if visible is None else xp.asarray(visible) > 0
    lo = xp.min(xp.where(vis[..., None], points, xp.inf), axis=-2)
    hi = xp.max(xp.where(vis[..., None], points, -xp.inf), axis=-2)
    return xp.concatenate([lo, hi], axis=-1)


def box_crop(box, out_size, crop_scale=CROP_SCALE) -> jax.Array:
    """The crop of a face box (x_min, y_min, x_max, y_max): a square `crop_scale` times the
    box's longer side, centred on the box, resized to out_size (the training pipeline's rule)."""
    box = _f32(box)
    center = 0.5 * (box[..., :2] + box[..., 2:])
    side = crop_scale * jnp.max(box[..., 2:] - box[..., :2], axis=-1)
    return crop(center, side, out_size)


def to_homogeneous(matrix) -> jax.Array:
    """float[..., 2, 3] -> float[..., 3, 3] with the row (0, 0, 1) appended."""
    matrix = _check_matrix(matrix)
    last = jnp.broadcast_to(jnp.array([0.0, 0.0, 1.0], jnp.float32), (*matrix.shape[:-2], 1, 3))
    return jnp.concatenate([matrix, last], axis=-2)


def compose(*matrices) -> jax.Array:
    """The affine that applies matrices[0] first, then matrices[1], and so on."""
    if not matrices:
        raise ValueError("compose needs at least one matrix")
    out = to_homogeneous(matrices[0])
    for m in matrices[1:]:
        out = to_homogeneous(m) @ out
    return out[..., :2, :]


def invert(matrix) -> jax.Array:
    """Inverse affine, written out: [A | t]^-1 = [A^-1 | -A^-1 t]."""
    matrix = _check_matrix(matrix)
    a, b, c = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 0, 2]
    d, e, f = matrix[..., 1, 0], matrix[..., 1, 1], matrix[..., 1, 2]
    det = a * e - b * d
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    return _affine(ia, ib, -(ia * c + ib * f), id_, ie, -(id_ * c + ie * f))


def transform_points(points, matrix) -> jax.Array:
    """Applies float[..., 2, 3] to points float[..., K, 2]."""
    points, matrix = _f32(points), _check_matrix(matrix)
    if points.ndim < 2 or points.shape[-1] != 2:
        raise ValueError(f"points must have shape [..., K, 2], got {points.shape}")
    return points @ jnp.swapaxes(matrix[..., :2], -1, -2) + matrix[..., None, :, 2]


def image_to_heatmap(points, stride) -> jax.Array:
    """Image pixels -> heatmap pixels for a heatmap `stride` times smaller (centres stay centres)."""
    return (_f32(points) + 0.5) / stride - 0.5


def heatmap_to_image(points, stride) -> jax.Array:
    """Heatmap pixels -> image pixels; the inverse of image_to_heatmap."""
    return (_f32(points) + 0.5) * stride - 0.5


def _bilinear(image, x, y) -> jax.Array:
    """Samples image[H, W, C] at float coords x, y [h, w]; each corner outside the image counts as zero."""
    hgt, wid = image.shape[:2]
    x0, y0 = jnp.floor(x), jnp.floor(y)
    out = 0.0
    for cx, wx in ((x0, x0 + 1 - x), (x0 + 1, x - x0)):
        for cy, wy in ((y0, y0 + 1 - y), (y0 + 1, y - y0)):
            inside = (cx >= 0) & (cx <= wid - 1) & (cy >= 0) & (cy <= hgt - 1)
            ix = jnp.clip(cx, 0, wid - 1).astype(jnp.int32)
            iy = jnp.clip(cy, 0, hgt - 1).astype(jnp.int32)
            weight = jnp.where(inside, wx * wy, 0.0)
            out = out + weight[..., None] * image[iy, ix]
    return out


def _warp_one(image, inverse, out_shape) -> jax.Array:
    h, w = out_shape
    ys, xs = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    sx = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    sy = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    return _bilinear(image, sx, sy)


def warp_affine(image, matrix, out_shape) -> jax.Array:
    """Warps image float[..., H, W, C] by matrix float[..., 2, 3] (source -> destination).

    Bilinear, zeros outside (per corner, as grid_sample's zero padding);
    differentiable in image and matrix. A matrix without batch dims is
    shared by every image; otherwise batch dims must match the image's.
    Returns float32[..., h, w, C] for out_shape (h, w).
    """
    image, matrix = _f32(image), _check_matrix(matrix)
    if image.ndim < 3:
        raise ValueError(f"image must have shape [..., H, W, C], got {image.shape}")
    out_shape = check_hw(out_shape, "out_shape")
    batch = image.shape[:-3]
    if matrix.shape[:-2] not in ((), batch):
        raise ValueError(
            f"matrix batch dims {matrix.shape[:-2]} do not match image batch dims {batch}"
        )
    matrix = jnp.broadcast_to(matrix, (*batch, 2, 3))
    flat_img = image.reshape(-1, *image.shape[-3:])
    flat_inv = invert(matrix).reshape(-1, 2, 3)
    warped = jax.vmap(_warp_one, in_axes=(0, 0, None))(flat_img, flat_inv, out_shape)
    return warped.reshape(*batch, *out_shape, image.shape[-1])
