"""The renderer of the embedded `synthetic_faces` data set: FaceParams -> Face.

Every drawn feature (face outline, brows, eyes, nose, lips) is a curve
through the projected landmarks, so image and points agree by construction,
and each shape is rasterized with exact area coverage (see `raster.coverage`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from sphm_jax import geometry
from sphm_jax.data.synthetic_faces.face import (
    BROWS,
    EYES,
    FaceParams,
    lerp,
    project,
    shape_landmarks,
)
from sphm_jax.data.synthetic_faces.raster import catmull_rom, composite, ellipse, stroke
from sphm_jax.data.synthetic_faces.sampling import sample_params
from sphm_jax.data.synthetic_faces.texture import (
    background_image,
    face_shading,
    finish,
    grain,
    stream,
)


class Face(NamedTuple):
    """A rendered face: image uint8[H, W, 3], landmarks float32[68, 2] (px), bbox float32[4]
    (the tight box of the landmarks), occluded float32[68] (1 under an occluder)."""

    image: np.ndarray
    landmarks: np.ndarray
    bbox: np.ndarray
    occluded: np.ndarray


def _forehead(unit: np.ndarray, p: FaceParams, grow=(1.0, 1.0), n: int = 15) -> np.ndarray:
    """The arc over the head from the right temple (point 16) to the left (0), both excluded."""
    right, left = unit[16], unit[0]
    t = np.pi * np.arange(1, n + 1) / (n + 1)
    base = lerp(right, left, 0.5 - 0.5 * np.cos(t)[:, None])
    mid = 0.5 * (right[0] + left[0])
    x = mid + (base[:, 0] - mid) * grow[0] * (1 + 0.08 * np.sin(t))
    y = base[:, 1] - p.forehead * grow[1] * np.sin(t)
    return np.stack([x, y], -1)


def _hair_shapes(unit: np.ndarray, p: FaceParams):
    """(behind, cap): the long hair behind the head (or None) and the cap over the forehead."""
    if p.hair_style == 0:
        return None, None
    right, left = unit[16], unit[0]
    outer = _forehead(unit, p, grow=(1.1, 1.18))
    brow_top = unit[17:27, 1].min()
    top = min(right[1], left[1]) - p.forehead
    h0 = lerp(brow_top - 0.12, top + 0.1, p.forehead - 0.6)  # the hairline, between brows and top
    xs = np.linspace(left[0], right[0], 9)
    hairline = np.stack([xs, h0 + 0.12 * (xs / max(abs(left[0]), 1e-6)) ** 2], -1)
    ends = [[right[0] * 1.1, right[1] + 0.08]], [[left[0] * 1.1, left[1] + 0.08]]
    cap = np.concatenate([ends[0], outer, ends[1], hairline])
    if p.hair_style == 1:
        return None, cap
    back = _forehead(unit, p, grow=(1.2, 1.25))
    sides = [
        [left[0] * 1.3, 0.4],
        [left[0] * 1.1, 1.2],
        [right[0] * 1.1, 1.2],
        [right[0] * 1.3, 0.4],
    ]
    return np.concatenate([back, sides]), cap


def _draw_eyes(paint, proj, unit, p: FaceParams, rng, shape) -> None:
    """Sclera, iris, pupil and glint inside the lids; lash line, lower lid and crease on them."""
    whites, irises, pupils, glints, lashes, lids, creases = ([] for _ in range(7))
    for first in EYES:
        eye = unit[first : first + 6]
        upper = catmull_rom(eye[[0, 1, 2, 3]], 6)
        lower = catmull_rom(eye[[3, 4, 5, 0]], 6)
        width = np.linalg.norm(eye[3] - eye[0])
        r = 0.22 * width
        center = eye[[1, 2, 4, 5]].mean(0) + np.array(p.gaze) * [0.25 * width, 0.02]
        whites.append(np.concatenate([upper[:-1], lower[:-1]]))
        irises.append(ellipse(center, (r, r), n=24))
        pupils.append(ellipse(center, (0.42 * r, 0.42 * r), n=16))
        glints.append(ellipse(center + [0.3 * r, -0.3 * r], (0.18 * r, 0.18 * r), n=8))
        lashes.append(stroke(upper, p.lash_width))
        lids.append(stroke(lower, 0.35 * p.lash_width))
        crease = upper[len(upper) // 6 : -len(upper) // 8] - [0, 0.03 + 0.3 * np.ptp(eye[:, 1])]
        creases.append(stroke(crease, 0.012))
    sclera = rng.uniform(0.75, 0.97) * np.float32([1, 0.97, 0.94])
    white = paint(proj(whites), sclera).full(shape)
    paint(proj(irises), p.iris, clip=white)
    paint(proj(pupils), np.float32([0.03] * 3), clip=white)
    paint(proj(glints), np.float32([1, 1, 1]), alpha=0.8, clip=white)
    paint(proj(lashes), p.hair * 0.4)
    paint(proj(lids), p.skin * 0.6, alpha=0.8)
    paint(proj(creases), p.skin * 0.7, alpha=0.6)


def _draw_nose(paint, proj, unit, p: FaceParams) -> None:
    """A highlight on the bridge (27-30), side shadows to the wings, the base (31-35), nostrils."""
    paint(proj(stroke(catmull_rom(unit[27:31], 4), 0.035)), np.minimum(p.skin * 1.15, 1), 0.45)
    sides = []
    for side, wing in ((-1, unit[31]), (1, unit[35])):
        guide = [unit[28] + [side * 0.07, 0], unit[29] + [side * 0.08, 0.02], wing - [0, 0.05]]
        sides.append(stroke(catmull_rom(np.array(guide), 4), 0.035))
    paint(proj(sides), p.skin * 0.75, alpha=0.5)
    paint(proj(stroke(catmull_rom(unit[31:36], 4), 0.022)), p.skin * 0.5, alpha=0.8)
    nostrils = []
    for i, j in ((31, 32), (34, 35)):
        center = 0.5 * (unit[i] + unit[j]) - [0, 0.012]
        tilt = np.arctan2(*(unit[j] - unit[i])[::-1])
        nostrils.append(ellipse(center, (0.04, 0.017), tilt, n=16))
    paint(proj(nostrils), p.skin * 0.3)


def _draw_mouth(paint, proj, unit, p: FaceParams, rng, shape) -> None:
    """Lips (48-59), the mouth's inside and teeth (60-67), the line where the lips meet."""
    upper = catmull_rom(unit[48:55], 4)
    lower = catmull_rom(unit[[54, 55, 56, 57, 58, 59, 48]], 4)
    paint(proj(np.concatenate([upper[:-1], lower[:-1]])), p.lips)
    inner_up = catmull_rom(unit[60:65], 4)
    inner_lo = catmull_rom(unit[[64, 65, 66, 67, 60]], 4)
    if p.mouth_open > 0:
        inside = paint(proj(np.concatenate([inner_up[:-1], inner_lo[:-1]])), p.lips * 0.25)
        teeth = np.concatenate([inner_up, (inner_up + [0, 0.06 * p.mouth_width])[::-1]])
        white = rng.uniform(0.75, 0.95) * np.float32([1, 0.97, 0.9])
        paint(proj(teeth), white, clip=inside.full(shape))
    paint(proj(stroke(inner_up, 0.016)), p.lips * 0.4)


def render(p: FaceParams) -> Face:
    """Draws the face described by `p`, back to front, each feature through its landmarks."""
    rng, size = stream(p, 1), p.image_size
    shape = (size, size)
    unit = shape_landmarks(p)

    def proj(shapes, depth=None):
        """Projects one polygon or a list of them (in one call, then split)."""
        if isinstance(shapes, np.ndarray):
            return project(shapes, p, unit, depth)
        flat = project(np.concatenate(shapes), p, unit, depth)
        return np.split(flat, np.cumsum([len(s) for s in shapes])[:-1])

    canvas = background_image(p)
    paint = functools.partial(composite, canvas)
    behind, cap = _hair_shapes(unit, p)
    if behind is not None:
        paint(proj(behind, -0.1), p.hair)
    paint(proj(ellipse((0, 2.0), (1.7, 0.75)), -0.1), p.clothes)
    neck = 0.75 * abs(unit[5, 0])
    throat = np.array([[-neck, 0.4], [neck, 0.4], [neck * 1.1, 1.7], [-neck * 1.1, 1.7]])
    paint(proj(throat, -0.05), p.skin * 0.8)
    ears = [
        ellipse([c[0] + np.sign(c[0]) * 0.05, c[1] + 0.2], (0.11, 0.2), n=20) for c in unit[[0, 16]]
    ]
    paint(proj(ears, 0.0), p.skin * 0.92)
    face = paint(proj(np.concatenate([catmull_rom(unit[:17], 4), _forehead(unit, p)])), p.skin)
    if cap is not None:
        paint(proj(cap), p.hair)
    brows = []
    for start, stop in BROWS:
        top = catmull_rom(unit[start:stop], 4)
        s = np.linspace(0.0, 1.0, len(top))
        thick = p.brow_thickness * (0.5 + 0.5 * (1 - s if start == 22 else s))
        brows.append(np.concatenate([top, (top + thick[:, None] * [0, 1])[::-1]]))
    paint(proj(brows), lerp(p.skin, p.hair * 0.8, rng.uniform(0.6, 0.95)))
    _draw_eyes(paint, proj, unit, p, rng, shape)
    _draw_nose(paint, proj, unit, p)
    _draw_mouth(paint, proj, unit, p, rng, shape)
    landmarks = proj(unit).astype(np.float32)
    occluded = np.zeros(68, bool)
    for poly, colour in p.occluders:
        cover = paint(proj(poly, 0.6), colour)
        h, w = cover.alpha.shape
        i, j = (
            np.rint(landmarks[:, 1]).astype(int) - cover.row0,
            np.rint(landmarks[:, 0]).astype(int) - cover.col0,
        )
        inside = (i >= 0) & (i < h) & (j >= 0) & (j < w)
        occluded[inside] |= cover.alpha[i[inside], j[inside]] > 0.5
    bbox = geometry.tight_box(landmarks)
    # Skin pores, film grain and the face's shading, all as one per-pixel gain.
    gain = (1 + p.texture * grain(rng, size)[..., 0]) * face_shading(p, face)
    image = finish(p, canvas, gain)
    return Face(image, landmarks, bbox, occluded.astype(np.float32))


def render_face(seed_or_rng, image_size: int = 256):
    """(image uint8[H, W, 3], landmarks float32[68, 2], bbox float32[4]) of a random face."""
    face = render(sample_params(seed_or_rng, image_size))
    return face.image, face.landmarks, face.bbox
