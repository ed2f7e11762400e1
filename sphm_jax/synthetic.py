"""A procedural 68-point face (iBUG order), random faces drawn from it, and their renderer.

The template is symmetric by construction, so the iBUG flip permutation
maps it onto its mirror image. `sample_landmarks` draws landmark sets alone
(the roundtrip report); `sample_params` + `render` (or `render_face`) draw
face images whose features pass exactly through their landmarks: the
embedded `synthetic_faces` data set.

  python -m sphm_jax.synthetic --grid docs/synthetic_faces.png [--seed N]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from sphm_jax import geometry, layouts


def _ellipse(center, half_w, half_h, angles) -> np.ndarray:
    """Points on an ellipse; angles in radians, positive angles above the centre (y grows down)."""
    return np.stack([center[0] + half_w * np.cos(angles), center[1] - half_h * np.sin(angles)], -1)


def _eye(cx, cy=-0.22, half_w=0.16, half_h=0.07) -> np.ndarray:
    # Corner, two upper-lid points, corner, two lower-lid points: the iBUG order for both eyes.
    xs = cx + half_w * np.array([-1, -1 / 3, 1 / 3, 1, 1 / 3, -1 / 3])
    ys = cy + half_h * np.array([0, -1, -1, 0, 1, 1])
    return np.stack([xs, ys], -1)


def face_template_68() -> np.ndarray:
    """float32[68, 2]: a frontal face in a unit frame (x, y in about [-1, 1], y down)."""
    delta = 0.2
    phi = (np.pi + 2 * delta) * np.arange(17) / 16 - delta
    jaw = np.stack([-0.85 * np.cos(phi), -0.1 + 0.95 * np.sin(phi)], -1)
    u = np.linspace(0.0, 1.0, 5)
    brow_y = -0.45 - 0.1 * np.sin(np.pi * u)
    left_brow = np.stack([-0.7 + 0.55 * u, brow_y], -1)
    right_brow = np.stack([0.15 + 0.55 * u, brow_y[::-1]], -1)
    bridge = np.stack([np.zeros(4), np.linspace(-0.3, 0.15, 4)], -1)
    base = np.stack([np.linspace(-0.2, 0.2, 5), 0.25 + np.array([0, 0.02, 0.03, 0.02, 0])], -1)
    outer_mouth = _ellipse((0.0, 0.5), 0.35, 0.15, np.pi - np.arange(12) * np.pi / 6)
    inner_mouth = _ellipse((0.0, 0.5), 0.25, 0.06, np.pi - np.arange(8) * np.pi / 4)
    parts = [
        jaw,
        left_brow,
        right_brow,
        bridge,
        base,
        _eye(-0.38),
        _eye(0.38),
        outer_mouth,
        inner_mouth,
    ]
    return np.concatenate(parts).astype(np.float32)


def sample_landmarks(seed: int, num_faces: int, min_image=200, max_image=800):
    """Random faces in images of random size: (landmarks float32[N, 68, 2], image sizes int[N, 2] as (w, h)).

    Each face is the template with per-point jitter, an anisotropic scale, a
    rotation of up to 30 degrees and a random position fully inside its image.
    """
    rng = np.random.default_rng(seed)
    template = face_template_68()
    sizes = rng.integers(min_image, max_image + 1, size=(num_faces, 2))
    jitter = rng.normal(0.0, 0.03, size=(num_faces, 68, 2))
    stretch = rng.uniform(0.85, 1.15, size=(num_faces, 1, 2))
    angle = np.deg2rad(rng.uniform(-30, 30, size=num_faces))
    rot = np.stack([np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)], -1)
    shapes = np.einsum("nkj,nij->nki", (template + jitter) * stretch, rot.reshape(-1, 2, 2))
    # Half-size 1.2 in the unit frame keeps the rotated, stretched face inside its image.
    radius = rng.uniform(0.2, 0.4, size=(num_faces, 1, 1)) * sizes.min(-1)[:, None, None] / 1.2
    margin = 1.2 * radius[:, 0]
    centers = rng.uniform(margin, sizes - margin)
    landmarks = shapes * radius + centers[:, None, :]
    return landmarks.astype(np.float32), sizes


# ---------------------------------------------------------------------------
# The renderer of the embedded `synthetic_faces` data set.
#
# A face is the template deformed by identity and expression parameters in
# the unit frame, turned by a yaw (a cylinder-plus-nose depth, so the far side
# is foreshortened), rolled, scaled and placed in the image. Every drawn
# feature (face outline, brows, eyes, nose, lips) is a curve through the
# projected landmarks, so image and points agree by construction, and each
# shape is rasterized with exact area coverage (see `coverage`).

SAMPLES = 8  # sub-rows per pixel in `coverage`; the x coverage is exact
FACE_WIDTH = 1.0 / geometry.CROP_SCALE  # mean face width / image side, as in the paper

# Skin tones from light to dark (RGB in [0, 1]); a face mixes two neighbours.
_SKIN = (
    np.array(
        [
            [255, 224, 196],
            [241, 194, 160],
            [224, 172, 135],
            [198, 134, 96],
            [160, 102, 66],
            [110, 70, 45],
            [80, 52, 35],
        ],
        np.float32,
    )
    / 255.0
)
_HAIR = (
    np.array(
        [[20, 16, 14], [55, 35, 22], [100, 65, 38], [180, 140, 90], [150, 60, 30], [160, 160, 160]],
        np.float32,
    )
    / 255.0
)
_IRIS = np.array([[70, 45, 25], [40, 90, 150], [60, 110, 60], [110, 110, 120]], np.float32) / 255.0

_EYES = (36, 42)  # first index of each eye: outer/inner corner, two upper-lid, two lower-lid points
_BROWS = ((17, 22), (22, 27))


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


def catmull_rom(points, steps: int = 6, closed: bool = False) -> np.ndarray:
    """A smooth curve through `points` float[N, 2] (every input point is a vertex of the output)."""
    p = np.asarray(points, np.float64)
    if closed:
        ext = np.concatenate([p[-1:], p, p[:2]])
    else:
        ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    p0, p1, p2, p3 = (ext[i : len(ext) - 3 + i, None] for i in range(4))
    t = (np.arange(steps) / steps)[None, :, None]
    curve = 0.5 * (
        2 * p1
        + (p2 - p0) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
        + (3 * p1 - p0 - 3 * p2 + p3) * t**3
    )
    curve = curve.reshape(-1, 2)
    return curve if closed else np.concatenate([curve, p[-1:]])


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


@dataclasses.dataclass(frozen=True)
class FaceParams:
    """Everything that decides one synthetic face; `sample_params` draws it, `render` draws the image.

    Lengths are in the unit frame of `face_template_68` unless they say px;
    angles in degrees; colours RGB in [0, 1].
    """

    image_size: int
    # identity: per-point offsets, then global proportions
    jitter: np.ndarray  # float[68, 2]
    face_width: float
    face_height: float
    jaw_width: float
    eye_spacing: float
    eye_size: float
    nose_length: float
    mouth_width: float
    lip_thickness: float
    forehead: float  # height of the forehead arc above the temples
    # expression
    mouth_open: float  # 0 closed, 1 wide open
    smile: float
    eye_open: tuple[float, float]  # 0 closed, 1 the template, up to 1.3 wide
    brow_raise: tuple[float, float]
    gaze: tuple[float, float]
    # pose: yaw turns the head (positive moves the nose to image-right), roll is in-plane
    yaw: float
    roll: float
    scale: float  # px per unit
    center: tuple[float, float]  # image position (px) of the unit-frame origin
    # appearance
    skin: np.ndarray
    hair: np.ndarray
    hair_style: int  # 0 none, 1 short, 2 long
    lips: np.ndarray
    iris: np.ndarray
    clothes: np.ndarray
    brow_thickness: float
    lash_width: float
    texture: float  # strength of the blotches and grain over the whole image
    shading: float  # darkening toward the face outline
    light: float  # strength of the image-wide lighting gradient
    light_angle: float
    brightness: float
    background: int  # 0 gradient, 1 colour noise, 2 stripes
    clutter: int  # random shapes in the background
    occluders: tuple  # ((polygon float[N, 2] in the unit frame, rgb), ...)
    blur: float  # box blur radius, px
    noise: float  # standard deviation of the sensor noise, in 0-255 levels
    gray: bool
    texture_seed: int


def clean(params: FaceParams) -> FaceParams:
    """The same face with flat colours: no texture, shading, lighting, occluders, blur or noise."""
    return dataclasses.replace(
        params,
        texture=0.0,
        shading=0.0,
        light=0.0,
        brightness=1.0,
        occluders=(),
        blur=0.0,
        noise=0.0,
        gray=False,
        clutter=0,
        background=0,
    )


def _rng(seed_or_rng) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


def _lerp(a, b, t):
    return a + (b - a) * t


def _identity(pts: np.ndarray, p: FaceParams) -> np.ndarray:
    """Global proportions: face and jaw width, eye spacing and size, nose length, mouth shape."""
    pts = pts * np.array([p.face_width, p.face_height])
    jaw = pts[:17]
    jaw[:, 0] *= 1 + (p.jaw_width - 1) * np.clip((jaw[:, 1] + 0.1) / 0.95, 0, 1)
    for first in _EYES:
        eye = pts[first : first + 6]
        c = eye.mean(0)
        pts[first : first + 6] = c * [p.eye_spacing, 1] + (eye - c) * p.eye_size
    pts[17:27, 0] += (p.eye_spacing - 1) * 0.38 * p.face_width * np.sign(pts[17:27, 0])
    top, base = pts[27, 1], pts[33, 1]
    pts[27:36, 1] = top + (pts[27:36, 1] - top) * p.nose_length
    pts[48:68, 1] += (p.nose_length - 1) * (base - top)  # the mouth keeps its distance to the nose
    mouth = pts[48:68]
    cy = 0.5 * (mouth[12, 1] + mouth[16, 1])  # the inner corners 60, 64 set the mouth line
    mouth[:, 0] *= p.mouth_width
    mouth[:12, 1] = cy + (mouth[:12, 1] - cy) * p.lip_thickness
    return pts


def _eyes_and_brows(pts: np.ndarray, p: FaceParams) -> np.ndarray:
    """Eye openness scales each lid point's distance to its corner line; brows rise or frown."""
    for first, k in zip(_EYES, p.eye_open):
        eye = pts[first : first + 6]
        a, b = eye[0], eye[3]
        line = a[1] + (eye[:, 0] - a[0]) / (b[0] - a[0]) * (b[1] - a[1])
        sag = 0.02 * max(0.0, 1.0 - k)  # a closed eye's lid line sags a little
        eye[:, 1] = line + (eye[:, 1] - line) * k + sag * np.array([0, 1, 1, 0, 1, 1])
    for (start, stop), raise_ in zip(_BROWS, p.brow_raise):
        inner = np.abs(pts[start:stop, 0]) < 0.35
        pts[start:stop, 1] -= 0.07 * raise_ * (1 + 0.4 * inner)
    return pts


def _mouth(pts: np.ndarray, p: FaceParams) -> np.ndarray:
    """Smile lifts the corners; opening lowers the lower lip, inner lip and chin."""
    cy = 0.5 * (pts[60, 1] + pts[64, 1])
    # A closed mouth's inner lips coincide: the inner upper lip is a gentle arch ...
    pts[61:64, 1] = cy + (pts[61:64, 1] - cy) * 0.25
    lift = p.smile * np.array([0.06, 0.03, 0, 0, 0, 0.03, 0.06, 0.03, 0, 0, 0, 0.03])
    pts[48:60, 1] -= lift
    pts[[48, 54], 0] *= 1 + 0.06 * p.smile
    pts[[60, 64], 1] -= 0.045 * p.smile
    pts[[61, 63], 1] -= 0.02 * p.smile
    gap = 0.3 * p.mouth_open
    # ... and the inner lower lip follows it, `gap` lower in the middle.
    pts[65:68] = pts[[63, 62, 61]] + np.array([[0, 0.7], [0, 1.0], [0, 0.7]]) * gap
    pts[55:60, 1] += gap * np.array([0.5, 0.9, 1.0, 0.9, 0.5])
    jaw_x = pts[:17, 0] / max(abs(pts[0, 0]), 1e-6)
    pts[:17, 1] += gap * np.clip(1 - np.abs(jaw_x), 0, 1) * (pts[:17, 1] > 0.2)  # the jaw drops
    return pts


def shape_landmarks(p: FaceParams) -> np.ndarray:
    """float64[68, 2]: the template with identity and expression applied, in the unit frame."""
    pts = face_template_68().astype(np.float64) + p.jitter
    return _mouth(_eyes_and_brows(_identity(pts, p), p), p)


def _depth(pts: np.ndarray, nose: np.ndarray) -> np.ndarray:
    """Depth toward the camera: a cylinder for the head plus a ridge for the nose (points 27-35)."""
    x, y = pts[..., 0], pts[..., 1]
    head = 0.45 * np.sqrt(np.maximum(1 - (x / 0.95) ** 2, 0))
    top, tip, base = nose[27, 1], nose[30, 1], nose[33, 1]
    rise = np.minimum(np.maximum((y - top) / max(tip - top, 1e-6), 0), 1)
    along = rise * np.minimum(np.maximum(1 - (y - base) / 0.1, 0), 1)
    return head + 0.3 * along * np.exp(-(((x - nose[30, 0]) / 0.12) ** 2))


def project(pts, p: FaceParams, unit_landmarks: np.ndarray, depth=None) -> np.ndarray:
    """Unit frame -> image px: yaw about the vertical axis, roll, scale, translation."""
    pts = np.asarray(pts, np.float64)
    z = _depth(pts, unit_landmarks) if depth is None else depth
    yaw, roll = np.deg2rad(p.yaw), np.deg2rad(p.roll)
    x = pts[..., 0] * np.cos(yaw) + z * np.sin(yaw)
    y = pts[..., 1]
    c, s = np.cos(roll), np.sin(roll)
    return np.stack([c * x - s * y, s * x + c * y], -1) * p.scale + np.asarray(p.center)


def _sample_occluder(rng: np.random.Generator, unit: np.ndarray, skin: np.ndarray):
    """A random blob, bar or polygon near a random landmark; a third are skin-coloured (a hand)."""
    anchor = unit[rng.integers(68)] + rng.normal(0, 0.1, 2)
    kind = rng.integers(3)
    angle = rng.uniform(0, np.pi)
    if kind == 0:
        poly = ellipse(anchor, rng.uniform(0.12, 0.35, 2), angle)
    elif kind == 1:
        half = np.array([rng.uniform(0.3, 0.8), rng.uniform(0.04, 0.1)])
        poly = _rotated(half * [[-1, -1], [1, -1], [1, 1], [-1, 1]], angle, anchor)
    else:
        n = rng.integers(5, 9)
        # Jittered even angles keep every gap below pi, so the polygon is simple.
        t = 2 * np.pi * (np.arange(n) + rng.uniform(-0.4, 0.4, n)) / n
        r = rng.uniform(0.1, 0.35, n)
        poly = anchor + np.stack([r * np.cos(t), r * np.sin(t)], -1)
    colour = skin * rng.uniform(0.85, 1.1) if rng.random() < 0.33 else rng.uniform(0, 1, 3)
    return poly, np.clip(colour, 0, 1).astype(np.float32)


def sample_params(seed_or_rng, image_size: int = 256) -> FaceParams:
    """A random face that fits its image: all 68 landmarks lie inside with a 1 % margin."""
    rng = _rng(seed_or_rng)
    u = rng.uniform
    tone = u(0, len(_SKIN) - 1)
    skin = _lerp(_SKIN[int(tone)], _SKIN[min(int(tone) + 1, len(_SKIN) - 1)], tone % 1)
    skin = np.clip(skin * u(0.9, 1.1) + rng.normal(0, 0.02, 3), 0, 1).astype(np.float32)
    hair = np.clip(_HAIR[rng.integers(len(_HAIR))] * u(0.8, 1.2), 0, 1).astype(np.float32)
    lips = np.clip(skin * [0.8, 0.55, 0.55] + np.array([0.1, 0, 0.02]) * u(0, 1), 0, 1).astype(
        np.float32
    )
    eye_open = u(0.15, 1.3) if rng.random() > 0.07 else 0.0
    raise_ = u(-0.6, 1.0)
    params = FaceParams(
        image_size=image_size,
        jitter=rng.normal(0.0, 0.012, (68, 2)),
        face_width=u(0.88, 1.12),
        face_height=u(0.9, 1.1),
        jaw_width=u(0.8, 1.1),
        eye_spacing=u(0.9, 1.1),
        eye_size=u(0.8, 1.2),
        nose_length=u(0.85, 1.15),
        mouth_width=u(0.8, 1.15),
        lip_thickness=u(0.6, 1.15),
        forehead=u(0.6, 0.85),
        mouth_open=0.0 if rng.random() < 0.4 else u(0.0, 1.0),
        smile=u(-0.4, 1.0),
        eye_open=tuple(np.clip(eye_open + rng.normal(0, 0.08, 2), 0, 1.3)),
        brow_raise=tuple(raise_ + rng.normal(0, 0.15, 2)),
        gaze=tuple(u(-1, 1, 2)),
        yaw=u(-35, 35),
        roll=u(-45, 45),
        scale=1.0,
        center=(0.0, 0.0),
        skin=skin,
        hair=hair,
        hair_style=int(rng.integers(3)),
        lips=lips,
        iris=np.clip(_IRIS[rng.integers(len(_IRIS))] * u(0.7, 1.3), 0, 1).astype(np.float32),
        clothes=u(0, 1, 3).astype(np.float32),
        brow_thickness=u(0.035, 0.08),
        lash_width=u(0.015, 0.035),
        texture=u(0.0, 0.12),
        shading=u(0.0, 0.35),
        light=u(0.0, 0.45),
        light_angle=u(0, 360),
        brightness=u(0.75, 1.15),
        background=int(rng.integers(3)),
        clutter=int(rng.integers(0, 7)),
        occluders=(),
        blur=u(0.3, 1.2) if rng.random() < 0.4 else 0.0,
        noise=u(1.0, 6.0) if rng.random() < 0.5 else 0.0,
        gray=bool(rng.random() < 0.1),
        texture_seed=int(rng.integers(2**31)),
    )
    unit = shape_landmarks(params)
    count = rng.choice(3, p=[0.65, 0.25, 0.1])
    occluders = tuple(_sample_occluder(rng, unit, skin) for _ in range(count))
    return _place(params, unit, rng, occluders)


def _place(p: FaceParams, unit: np.ndarray, rng, occluders) -> FaceParams:
    """Scale (the face ~220/256 of the image wide, jittered) and translate so every point fits."""
    size = p.image_size
    margin = 0.01 * size
    width = np.ptp(unit[:, 0])
    at_origin = project(unit, dataclasses.replace(p, scale=1.0, center=(0.0, 0.0)), unit)
    lo, hi = at_origin.min(0), at_origin.max(0)
    scale = FACE_WIDTH * size * rng.uniform(0.83, 1.18) / width
    scale = min(scale, (size - 1 - 2 * margin) / np.max(hi - lo))
    low, high = margin - scale * lo, size - 1 - margin - scale * hi
    center = low + rng.random(2) * np.maximum(high - low, 0)
    return dataclasses.replace(
        p, scale=float(scale), center=tuple(float(c) for c in center), occluders=occluders
    )


class Face(NamedTuple):
    """A rendered face: image uint8[H, W, 3], landmarks float32[68, 2] (px), bbox float32[4]
    (the tight box of the landmarks), occluded float32[68] (1 under an occluder)."""

    image: np.ndarray
    landmarks: np.ndarray
    bbox: np.ndarray
    occluded: np.ndarray


class Patch(NamedTuple):
    """What `_paint` laid down: coverage times alpha over the window at (row0, col0)."""

    row0: int
    col0: int
    alpha: np.ndarray

    def full(self, shape) -> np.ndarray:
        """The same, as a float32 array of the whole image."""
        out = np.zeros(shape, np.float32)
        h, w = self.alpha.shape
        out[self.row0 : self.row0 + h, self.col0 : self.col0 + w] = self.alpha
        return out


def _stream(p: FaceParams, k: int) -> np.random.Generator:
    """The k-th random stream of a face's textures and minor colours, independent of the others."""
    return np.random.default_rng([p.texture_seed, k])


def _field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """float32[size, size] smooth noise, about unit variance: a bicubic blow-up of a cells^2 grid."""
    grid = Image.fromarray(rng.standard_normal((cells, cells)).astype(np.float32), mode="F")
    return np.asarray(grid.resize((size, size), Image.BICUBIC))


def _grain(rng: np.random.Generator, size: int) -> np.ndarray:
    """float32[size, size, 1]: blotches plus fine grain, about unit variance, for every texture."""
    return (_field(rng, size, rng.integers(4, 10)) + 0.5 * _field(rng, size, size // 4))[..., None]


def _rgb(colour) -> tuple[int, int, int]:
    return tuple(min(max(int(c * 255 + 0.5), 0), 255) for c in np.asarray(colour).tolist())


def _paint(canvas: Image.Image, polygons, colour, alpha=1.0, clip=None, samples=SAMPLES) -> Patch:
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


def _rotated(local, angle: float, center) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.asarray(local) @ np.array([[c, s], [-s, c]]) + center


def _background(p: FaceParams) -> Image.Image:
    """RGB image: a gradient, colour noise or stripes, with grain and random shapes.

    Drawn at half size and enlarged: nothing here needs sub-pixel accuracy.
    """
    rng, size = _stream(p, 0), p.image_size // 2
    a, b = rng.uniform(0, 1, (2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.arange(size, dtype=np.float32) / size - 0.5
    ramp = xs[None, :] * np.cos(angle) + xs[:, None] * np.sin(angle)
    if p.background == 0:
        mix = ramp + 0.5
    elif p.background == 1:
        mix = 0.5 + 0.2 * _field(rng, size, rng.integers(2, 8))
    else:
        mix = 0.5 + 0.5 * np.tanh(3 * np.sin(2 * np.pi * rng.uniform(2, 12) * ramp))
    canvas = a + (b - a) * mix[..., None]
    if p.background == 1:
        canvas += 0.15 * np.stack([_field(rng, size, 5) for _ in range(3)], -1)
    canvas = Image.fromarray(np.clip(canvas * 255 + 0.5, 0, 255).astype(np.uint8))
    for _ in range(p.clutter):
        center, radii = rng.uniform(0, size, 2), rng.uniform(0.05, 0.3, 2) * size
        shape = ellipse(center, radii, rng.uniform(0, np.pi), n=int(rng.choice([3, 4, 6, 24])))
        _paint(canvas, shape, rng.uniform(0, 1, 3), samples=2)
    return canvas.resize((p.image_size, p.image_size), Image.BILINEAR)


def _forehead(unit: np.ndarray, p: FaceParams, grow=(1.0, 1.0), n: int = 15) -> np.ndarray:
    """The arc over the head from the right temple (point 16) to the left (0), both excluded."""
    right, left = unit[16], unit[0]
    t = np.pi * np.arange(1, n + 1) / (n + 1)
    base = _lerp(right, left, 0.5 - 0.5 * np.cos(t)[:, None])
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
    h0 = _lerp(brow_top - 0.12, top + 0.1, p.forehead - 0.6)  # the hairline, between brows and top
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
    for first in _EYES:
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
    """A highlight along the bridge (27-30), side shadows to the wings, the base (31-35), nostrils."""
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


def _face_shading(p: FaceParams, face: Patch) -> np.ndarray:
    """float32[H, W]: a multiplier darkening the face toward its outline (a rounded head)."""
    shading = np.ones((p.image_size, p.image_size), np.float32)
    h, w = face.alpha.shape
    if p.shading == 0 or face.alpha.size == 0:
        return shading
    roll = np.deg2rad(p.roll)
    # Unit-frame coordinates of the window's pixels, by broadcasting a column and a row.
    dx = ((np.arange(w, dtype=np.float32) + face.col0 - p.center[0]) / p.scale)[None, :]
    dy = ((np.arange(h, dtype=np.float32) + face.row0 - p.center[1]) / p.scale)[:, None]
    qx = (np.cos(roll) * dx + np.sin(roll) * dy) / max(np.cos(np.deg2rad(p.yaw)), 0.5)
    qy = -np.sin(roll) * dx + np.cos(roll) * dy
    r2 = np.minimum((qx / 0.95) ** 2 + (qy - 0.05) ** 2, 1.3)
    shading[face.row0 : face.row0 + h, face.col0 : face.col0 + w] -= p.shading * face.alpha * r2**2
    return shading


def _finish(p: FaceParams, canvas: Image.Image, gain: np.ndarray) -> np.ndarray:
    """Lighting gradient, brightness and the per-pixel `gain`, blur, sensor noise, greyscale."""
    size, rng = p.image_size, _stream(p, 2)
    angle = np.deg2rad(p.light_angle)
    xs = np.arange(size, dtype=np.float32) / size - 0.5
    ramp = np.cos(angle) * xs[None, :] + np.sin(angle) * xs[:, None]
    gain *= p.brightness * (1 + 2 * p.light * ramp)
    # In-place float32 arithmetic: every new 256 x 256 x 3 array costs its page faults.
    image = np.asarray(canvas, np.float32)
    image *= gain[..., None]
    image += 0.5  # rounds, with the truncating casts below
    if p.blur > 0:
        # A box blur of fractional radius: 2.5x faster than Pillow's three-box Gaussian.
        blurred = Image.fromarray(np.clip(image, 0, 255, out=image).astype(np.uint8))
        image = np.asarray(blurred.filter(ImageFilter.BoxBlur(p.blur)), np.float32)
        image += 0.5
    if p.noise > 0:
        # Uniform luminance noise of standard deviation `noise`: 6x faster than Gaussian.
        noise = rng.random((size, size, 1), np.float32)
        noise -= 0.5
        noise *= np.sqrt(12) * p.noise
        image += noise
    image = np.clip(image, 0, 255, out=image).astype(np.uint8)
    if p.gray:
        grey = image.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
        image = np.repeat(np.rint(grey).astype(np.uint8)[..., None], 3, -1)
    return image


def render(p: FaceParams) -> Face:
    """Draws the face described by `p`, back to front, each feature through its landmarks."""
    rng, size = _stream(p, 1), p.image_size
    shape = (size, size)
    unit = shape_landmarks(p)

    def proj(shapes, depth=None):
        """Projects one polygon or a list of them (in one call, then split)."""
        if isinstance(shapes, np.ndarray):
            return project(shapes, p, unit, depth)
        flat = project(np.concatenate(shapes), p, unit, depth)
        return np.split(flat, np.cumsum([len(s) for s in shapes])[:-1])

    canvas = _background(p)
    paint = functools.partial(_paint, canvas)
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
    for start, stop in _BROWS:
        top = catmull_rom(unit[start:stop], 4)
        s = np.linspace(0.0, 1.0, len(top))
        thick = p.brow_thickness * (0.5 + 0.5 * (1 - s if start == 22 else s))
        brows.append(np.concatenate([top, (top + thick[:, None] * [0, 1])[::-1]]))
    paint(proj(brows), _lerp(p.skin, p.hair * 0.8, rng.uniform(0.6, 0.95)))
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
    bbox = np.concatenate([landmarks.min(0), landmarks.max(0)])
    # Skin pores, film grain and the face's shading, all as one per-pixel gain.
    gain = (1 + p.texture * _grain(rng, size)[..., 0]) * _face_shading(p, face)
    image = _finish(p, canvas, gain)
    return Face(image, landmarks, bbox, occluded.astype(np.float32))


def render_face(seed_or_rng, image_size: int = 256):
    """(image uint8[H, W, 3], landmarks float32[68, 2], bbox float32[4]) of a random face."""
    face = render(sample_params(seed_or_rng, image_size))
    return face.image, face.landmarks, face.bbox


# Landmark colours of the grid, one per layouts.IBUG68 group: jaw, brows, nose, eyes, mouth.
_GROUP_COLOURS = ((255, 255, 0), (255, 128, 0), (0, 255, 255), (0, 255, 0), (255, 0, 255))


def grid(seed: int = 0, rows: int = 4, cols: int = 4, tile: int = 192) -> Image.Image:
    """A rows x cols sheet of random faces (seeds seed, seed + 1, ...) with their landmarks."""
    sheet = Image.new("RGB", (cols * tile, rows * tile))
    for i in range(rows * cols):
        face = render(sample_params(seed + i))
        img = Image.fromarray(face.image).resize((tile, tile), Image.LANCZOS)
        draw = ImageDraw.Draw(img)
        # Resizing maps x to (x + 0.5) * tile / size - 0.5, the pixel-centre convention.
        pts = (face.landmarks + 0.5) * tile / face.image.shape[1] - 0.5
        for (_, indices), colour in zip(layouts.IBUG68.groups, _GROUP_COLOURS):
            for x, y in pts[list(indices)]:
                draw.ellipse([x - 1.2, y - 1.2, x + 1.2, y + 1.2], fill=colour)
        sheet.paste(img, ((i % cols) * tile, (i // cols) * tile))
    return sheet


def main(argv=None) -> None:
    # argparse, not absl flags: this module is imported by absl programs that define --seed.
    parser = argparse.ArgumentParser(description="Samples of the synthetic_faces renderer.")
    parser.add_argument("--grid", required=True, help="PNG file to write the sample sheet to.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the first face.")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--cols", type=int, default=4)
    parser.add_argument("--tile", type=int, default=192, help="Side of one sample, px.")
    args = parser.parse_args(argv)
    sheet = grid(args.seed, args.rows, args.cols, args.tile)
    # An adaptive palette keeps the noisy sheet small enough for the README.
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        args.grid, optimize=True
    )


if __name__ == "__main__":
    main()
