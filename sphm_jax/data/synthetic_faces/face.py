"""FaceParams, everything that decides one synthetic face, and the face's landmarks.

A face is the template deformed by identity and expression parameters in
the unit frame, turned by a yaw (a cylinder-plus-nose depth, so the far side
is foreshortened), rolled, scaled and placed in the image (`project`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sphm_jax.data.synthetic_faces.template import face_template_68

EYES = (36, 42)  # first index of each eye: outer/inner corner, two upper-lid, two lower-lid points
BROWS = ((17, 22), (22, 27))


@dataclasses.dataclass(frozen=True)
class FaceParams:
    """Everything that decides one synthetic face; `sample_params` samples it, `render` its image.

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


def lerp(a, b, t):
    return a + (b - a) * t


def _identity(pts: np.ndarray, p: FaceParams) -> np.ndarray:
    """Global proportions: face and jaw width, eye spacing and size, nose length, mouth shape."""
    pts = pts * np.array([p.face_width, p.face_height])
    jaw = pts[:17]
    jaw[:, 0] *= 1 + (p.jaw_width - 1) * np.clip((jaw[:, 1] + 0.1) / 0.95, 0, 1)
    for first in EYES:
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
    for first, k in zip(EYES, p.eye_open):
        eye = pts[first : first + 6]
        a, b = eye[0], eye[3]
        line = a[1] + (eye[:, 0] - a[0]) / (b[0] - a[0]) * (b[1] - a[1])
        sag = 0.02 * max(0.0, 1.0 - k)  # a closed eye's lid line sags a little
        eye[:, 1] = line + (eye[:, 1] - line) * k + sag * np.array([0, 1, 1, 0, 1, 1])
    for (start, stop), raise_ in zip(BROWS, p.brow_raise):
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
