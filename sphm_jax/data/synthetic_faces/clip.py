"""The embedded test clip: one rendered face moving smoothly, with exact landmarks per frame.

One identity and appearance (`sample_params(seed)`), shrunk so the face has
background around it, follows slow sinusoids: its centre a Lissajous curve,
roll, yaw, scale and mouth opening. Texture, blur and noise stay fixed.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
from PIL import Image

from sphm_jax.data import landmark_io
from sphm_jax.data.synthetic_faces.face import FaceParams, project, shape_landmarks
from sphm_jax.data.synthetic_faces.renderer import render
from sphm_jax.data.synthetic_faces.sampling import sample_params

CLIP_FACE_WIDTH = 0.43  # landmark width / frame side of the frontal face: room for context
# (amplitude, period in frames) of each motion; about 2-4 px per frame at 256 px.
CENTER = (0.12, (120, 80))  # fraction of the frame; x and y periods in ratio 3:2 (Lissajous)
ROLL, YAW, SCALE = (12.0, 100), (20.0, 140), (0.08, 90)
# mouth_open in [0.05, 0.65]: never 0, so every frame draws the teeth's colour from the texture
# stream and the grain drawn after it stays the same.
MOUTH = (0.3, 70)
_MARGIN = 0.02  # of the frame, kept free on every side


def _landmarks(p: FaceParams) -> np.ndarray:
    unit = shape_landmarks(p)
    return project(unit, p, unit)


def _path(base: FaceParams, phases: np.ndarray, t: np.ndarray, reach: float) -> list[FaceParams]:
    """The face at frames t, its centre's amplitude multiplied by `reach`."""
    periods = np.array([*CENTER[1], ROLL[1], YAW[1], SCALE[1], MOUTH[1]])
    waves = np.sin(2 * np.pi * t[:, None] / periods + phases)
    amp = reach * CENTER[0] * base.image_size
    return [
        dataclasses.replace(
            base,
            center=(base.center[0] + amp * x, base.center[1] + amp * y),
            roll=float(ROLL[0] * roll),
            yaw=float(YAW[0] * yaw),
            scale=float(base.scale * (1 + SCALE[0] * scale)),
            mouth_open=float(0.35 + MOUTH[0] * mouth),
        )
        for x, y, roll, yaw, scale, mouth in waves
    ]


def clip_params(seed: int, num_frames: int, image_size: int = 256) -> list[FaceParams]:
    """FaceParams of each frame: one face on a smooth path, every landmark inside the frame."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    base = sample_params(seed, image_size)
    # Frontal, centred and 43 % wide; occluders off: the clip's landmarks are all visible.
    base = dataclasses.replace(
        base, occluders=(), roll=0.0, yaw=0.0, mouth_open=0.35, scale=1.0, center=(0.0, 0.0)
    )
    pts = _landmarks(base)
    scale = CLIP_FACE_WIDTH * image_size / np.ptp(pts[:, 0])
    # The landmarks' box a little below the centre: the forehead and hair above it fit too.
    mid = scale * 0.5 * (pts.min(0) + pts.max(0)) - [0, 0.05 * image_size]
    base = dataclasses.replace(
        base, scale=float(scale), center=tuple(float(c) for c in (image_size - 1) / 2 - mid)
    )
    phases = np.random.default_rng([seed, 1]).uniform(0, 2 * np.pi, 6)
    t = np.arange(num_frames)
    lo, hi = _MARGIN * (image_size - 1), (1 - _MARGIN) * (image_size - 1)
    for reach in np.linspace(1.0, 0.0, 11):  # the centre's sweep shrinks until every frame fits
        frames = _path(base, phases, t, reach)
        pts = np.stack([_landmarks(p) for p in frames])
        if pts.min() >= lo and pts.max() <= hi:
            return frames
    raise ValueError(f"seed {seed}: the face does not fit a {image_size} px frame")


def render_clip(seed: int = 0, num_frames: int = 48, image_size: int = 256):
    """(frames uint8[T, S, S, 3], landmarks float32[T, 68, 2]) of the clip of `seed`."""
    faces = [render(p) for p in clip_params(seed, num_frames, image_size)]
    return np.stack([f.image for f in faces]), np.stack([f.landmarks for f in faces])


def _cv2():
    try:
        import cv2
    except ImportError as e:
        raise ImportError(
            "writing the clip's video needs OpenCV: pip install opencv-python-headless"
        ) from e
    return cv2


def write_clip(directory, frames, landmarks, fps: float = 25.0) -> dict:
    """Writes clip.mp4, frames/NNNNNN.png with a .pts beside each, landmarks.npy; their paths.

    The .pts files are iBUG (1-based); `landmark_io.read_pts` returns the 0-based points.
    """
    frames, landmarks = np.asarray(frames), np.asarray(landmarks, np.float32)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8[T, H, W, 3], got {frames.dtype}{frames.shape}")
    if landmarks.ndim != 3 or landmarks.shape[::2] != (len(frames), 2):
        raise ValueError(f"landmarks must be [{len(frames)}, K, 2], got {landmarks.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    cv2 = _cv2()
    out = pathlib.Path(directory)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    video = out / "clip.mp4"
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write an mp4v video to {video}")
    try:
        for i, (frame, points) in enumerate(zip(frames, landmarks)):
            writer.write(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV wants BGR
            Image.fromarray(frame).save(out / "frames" / f"{i:06d}.png")
            (out / "frames" / f"{i:06d}.pts").write_text(landmark_io.format_pts(points))
    finally:
        writer.release()
    np.save(out / "landmarks.npy", landmarks)
    return {"video": video, "frames": out / "frames", "landmarks": out / "landmarks.npy"}
