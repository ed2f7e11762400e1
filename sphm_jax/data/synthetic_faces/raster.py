"""Exact area-coverage rasterization: polygons, the curves and bands they are built from,
and compositing a colour over a canvas by coverage."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

SAMPLES = 8  # sub-rows per pixel in `coverage`; the x coverage is exact


def coverage(polygons, height: int, width: int, samples: int = SAMPLES):
    """Area coverage of simple polygons: (row0, col0, float32[h, w] in [0, 1]) of their window.

    `polygons` is one float[N, 2] array of (x, y) image pixels or a list of them
    (disjoint: their coverages add up). Pixel centres sit at integers, so pixel
    (i, j) is the square [j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]. Along x the
    coverage is exact (each scanline adds the covered length of every pixel);
    along y it averages `samples` scanlines per pixel row: the same as drawing
    at `samples` x the resolution (a point x at (x + 0.5) * S - 0.5) and box-filtering
    back down, with no rounding of x at all. Pillow's ImageDraw.polygon cannot
    stand in: it truncates vertices to integers and also fills the pixels whose
    centres lie on the outline (a half-pixel dilation), so even supersampled by
    S it places edges only to 1/S px and shifted by up to 1/S px.
    """
    polys = [polygons] if isinstance(polygons, np.ndarray) else list(polygons)
    pts = np.concatenate(polys).astype(np.float64) + 0.5  # corner frame: pixel j spans [j, j + 1)
    x, y = pts[:, 0], pts[:, 1]
    c0, c1 = (min(max(int(v), 0), width) for v in (np.floor(x.min()), np.ceil(x.max())))
    r0, r1 = (min(max(int(v), 0), height) for v in (np.floor(y.min()), np.ceil(y.max())))
    w, h = c1 - c0, r1 - r0
    if h <= 0 or w <= 0:
        return r0, c0, np.zeros((max(h, 0), max(w, 0)), np.float32)
    # Each edge runs to the next vertex of its own polygon; the signed area orients the edges,
    # so summing crossings needs no sort and no abs.
    nxt, orient, start = np.arange(1, len(pts) + 1), [], 0
    for poly in polys:
        stop = start + len(poly)
        nxt[stop - 1] = start
        px, py = x[start:stop], y[start:stop]
        area = np.dot(px[:-1], py[1:]) - np.dot(px[1:], py[:-1]) + px[-1] * py[0] - px[0] * py[-1]
        orient.append(np.full(len(poly), 1.0 if area >= 0 else -1.0))
        start = stop
    x1, y1, orient = x[nxt], y[nxt], np.concatenate(orient)
    # Scanline k sits at v = r0 + (k + 0.5) / samples; an edge crosses it if min(y) <= v < max(y).
    rows = h * samples
    first = np.minimum(np.maximum(np.ceil((np.minimum(y, y1) - r0) * samples - 0.5), 0), rows)
    stop = np.minimum(np.maximum(np.ceil((np.maximum(y, y1) - r0) * samples - 0.5), 0), rows)
    counts = (stop - first).astype(np.int64)
    edge = np.repeat(np.arange(len(x)), counts)
    k = (np.arange(len(edge)) + np.repeat(first - np.cumsum(counts) + counts, counts)).astype(
        np.int64
    )
    ya, yb, xa, xb = y[edge], y1[edge], x[edge], x1[edge]
    u = xa + ((r0 + (k + 0.5) / samples) - ya) / (yb - ya) * (xb - xa) - c0
    u = np.minimum(np.maximum(u, 0), w)
    sign = np.where(yb > ya, -orient[edge], orient[edge]) / samples
    col = np.minimum(u.astype(np.int64), w - 1)
    flat = (k // samples) * (w + 1) + col
    # A crossing at u covers pixel col by (col + 1 - u) and every pixel to its right fully:
    # a difference array that a cumulative sum along the row turns into coverage.
    weights = np.concatenate([sign * (col + 1 - u), sign * (u - col)])
    diff = np.bincount(np.concatenate([flat, flat + 1]), weights, h * (w + 1))
    return r0, c0, np.cumsum(diff.reshape(h, w + 1)[:, :w], 1, dtype=np.float32)


def catmull_rom(points, steps: int = 6) -> np.ndarray:
    """A smooth open curve through `points` float[N, 2] (each input point is an output vertex)."""
    p = np.asarray(points, np.float64)
    # Mirrored end points make the end tangents point along the first and last segments.
    ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    p0, p1, p2, p3 = (ext[i : len(ext) - 3 + i, None] for i in range(4))
    t = (np.arange(steps) / steps)[None, :, None]
    curve = 0.5 * (
        2 * p1
        + (p2 - p0) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
        + (3 * p1 - p0 - 3 * p2 + p3) * t**3
    )
    return np.concatenate([curve.reshape(-1, 2), p[-1:]])


def stroke(curve, width) -> np.ndarray:
    """Polygon of a band of `width` centred on an open curve, tapering to a point at both ends."""
    curve = np.asarray(curve, np.float64)
    tangent = np.gradient(curve, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], -1)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=-1))])
    half = 0.5 * width * np.sqrt(np.clip(np.sin(np.pi * arc / max(arc[-1], 1e-12)), 0, 1))[:, None]
    return np.concatenate([curve + half * normal, (curve - half * normal)[::-1]])


def ellipse(center, radii, angle: float = 0.0, n: int = 32) -> np.ndarray:
    """Polygon float[n, 2] of an ellipse with the given radii, rotated by `angle` radians."""
    t = 2 * np.pi * np.arange(n) / n
    c, s = np.cos(angle), np.sin(angle)
    x, y = radii[0] * np.cos(t), radii[1] * np.sin(t)
    return np.stack([center[0] + c * x - s * y, center[1] + s * x + c * y], -1)


class Patch(NamedTuple):
    """What `composite` laid down: coverage times alpha over the window at (row0, col0)."""

    row0: int
    col0: int
    alpha: np.ndarray

    def full(self, shape) -> np.ndarray:
        """The same, as a float32 array of the whole image."""
        out = np.zeros(shape, np.float32)
        h, w = self.alpha.shape
        out[self.row0 : self.row0 + h, self.col0 : self.col0 + w] = self.alpha
        return out


def _rgb(colour) -> tuple[int, int, int]:
    return tuple(min(max(int(c * 255 + 0.5), 0), 255) for c in np.asarray(colour).tolist())


def composite(
    canvas: Image.Image, polygons, colour, alpha=1.0, clip=None, samples=SAMPLES
) -> Patch:
    """Composites the rgb `colour` over the canvas in place, by coverage (times `clip`, if given).

    Pillow blends through an 8-bit mask, so an edge lands within 1/500 px of its coverage.
    """
    r0, c0, cov = coverage(polygons, canvas.height, canvas.width, samples)
    h, w = cov.shape
    a = cov * alpha if clip is None else cov * alpha * clip[r0 : r0 + h, c0 : c0 + w]
    if a.size:
        mask = Image.fromarray(np.minimum(a * 255 + 0.5, 255).astype(np.uint8), mode="L")
        canvas.paste(_rgb(colour), (c0, r0, c0 + w, r0 + h), mask)
    return Patch(r0, c0, a)
