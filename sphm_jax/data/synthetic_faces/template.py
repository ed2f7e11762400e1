"""The procedural 68-point face (iBUG order) and random landmark sets drawn from it.

The template is symmetric by construction, so the iBUG flip permutation
maps it onto its mirror image. `sample_landmarks` draws landmark sets alone
(the roundtrip report).
"""

from __future__ import annotations

import numpy as np


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
    """Random faces in random-size images: (landmarks float32[N, 68, 2], sizes int[N, 2] as (w, h)).

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
