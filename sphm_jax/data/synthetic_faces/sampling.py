"""Random faces: `sample_params` draws a FaceParams whose landmarks all fit in the image."""

from __future__ import annotations

import dataclasses

import numpy as np

from sphm_jax import geometry
from sphm_jax.data.synthetic_faces.face import FaceParams, lerp, project, shape_landmarks
from sphm_jax.data.synthetic_faces.raster import ellipse

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


def _rng(seed_or_rng) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


def _rotated(local, angle: float, center) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.asarray(local) @ np.array([[c, s], [-s, c]]) + center


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
    skin = lerp(_SKIN[int(tone)], _SKIN[min(int(tone) + 1, len(_SKIN) - 1)], tone % 1)
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
