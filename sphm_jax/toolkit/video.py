"""Landmarks through a video: detect, then crop each frame from the previous frame's landmarks.

A face is detected on the first frame and again whenever its track is lost (the mean heatmap
peak drops below `lost_score`, or every `redetect_every` frames if set); in between each face is
cropped around the tight box of its previous landmarks (the box the 68-point builders train on),
calibrated to the model's own bias when the workdir has that calibration (sphm_jax.detect).
Smoothing (One-Euro) is optional and off by default, so the raw model can be measured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from etils import epath

from sphm_jax import geometry
from sphm_jax.data import image_io
from sphm_jax.data.boxes import InputError, iou
from sphm_jax.toolkit import detectors, smoothing

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
LOST_SCORE = 0.25  # mean heatmap peak below which a track is taken as lost (docs/predict.md)


def _cv2():
    try:
        import cv2  # pylint: disable=g-import-not-at-top
    except ImportError as err:
        raise InputError(
            f"video files need OpenCV (pip install 'sphm_jax[video]'): {err}"
        ) from None
    return cv2


def video_frames(path) -> tuple[Iterator[np.ndarray], float]:
    """(uint8 RGB frames, read lazily, frames per second) of a video file."""
    cv2 = _cv2()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(f"{path}: not a readable video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0

    def frames():
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                yield np.ascontiguousarray(bgr[..., ::-1])
        finally:
            capture.release()

    return frames(), float(fps)


def folder_frames(files: Iterable, fps: float = 25.0) -> tuple[Iterator[np.ndarray], float]:
    """(frames, fps) of image files taken as the frames of one clip, in the order given."""
    return (image_io.read_image(f) for f in files), fps


class VideoWriter:
    """Frames to an .mp4/.avi file (mp4v / MJPG) as they come."""

    def __init__(self, path, fps: float):
        self.cv2, self.path, self.fps, self.out = _cv2(), epath.Path(path), fps, None

    def write(self, frame: np.ndarray) -> None:
        if self.out is None:  # the size is known at the first frame
            self.path.parent.mkdir(parents=True, exist_ok=True)
            code = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
            fourcc = self.cv2.VideoWriter_fourcc(*code)
            size = (frame.shape[1], frame.shape[0])
            self.out = self.cv2.VideoWriter(str(self.path), fourcc, self.fps, size)
        self.out.write(np.ascontiguousarray(frame[..., ::-1]))

    def close(self) -> None:
        if self.out is not None:
            self.out.release()


@dataclasses.dataclass
class Track:
    """One face followed through the clip."""

    id: int
    points: np.ndarray  # the last frame's raw landmarks [K, 2]
    filter: smoothing.OneEuroState | None = None


@dataclasses.dataclass(frozen=True)
class Face:
    """One face in one frame: its track, the crop box, landmarks (smoothed if asked), scores."""

    track: int
    box: np.ndarray
    points: np.ndarray
    scores: np.ndarray
    detected: bool  # cropped from a detection (True) or from the previous landmarks


def _trackable(boxes, shape) -> bool:
    """Whether every landmark box can be cropped: at least 2 px each way, and on the frame."""
    size_ok = np.all(boxes[:, 2:] - boxes[:, :2] >= 2.0)
    on_frame = np.all((boxes[:, 2] > 0) & (boxes[:, 3] > 0))
    on_frame &= np.all((boxes[:, 0] < shape[1] - 1) & (boxes[:, 1] < shape[0] - 1))
    return bool(size_ok and on_frame)


def _associate(boxes, tracks: list[Track], next_id: int) -> tuple[list, int]:
    """Track ids for fresh boxes: a previous track whose landmark box overlaps it, else a new id."""
    previous = [geometry.tight_box(t.points) for t in tracks]
    overlaps = iou(boxes, np.reshape(previous, (-1, 4))) if previous else None
    ids, taken = [], set()
    for i in range(len(boxes)):
        best = -1 if overlaps is None else int(np.argmax(overlaps[i]))
        if best >= 0 and overlaps[i, best] > 0.3 and best not in taken:
            taken.add(best)
            ids.append(tracks[best])
        else:
            ids.append(Track(next_id, np.zeros((0, 2))))
            next_id += 1
    return ids, next_id


def track(
    frames: Iterable[np.ndarray],
    predictor,
    find_faces: Callable[[np.ndarray], np.ndarray],
    *,
    fps: float = 25.0,
    lost_score: float = LOST_SCORE,
    redetect_every: int = 0,
    smooth: smoothing.OneEuroParams | None = None,
    recrop: detectors.Calibration | None = None,
) -> Iterator[tuple[np.ndarray, list[Face]]]:
    """(frame, its faces) for each frame, in frame order.

    predictor: (image, boxes) -> (points [F, K, 2], scores [F, K]), e.g. a Predictor.
    find_faces: image -> training boxes [F, 4] (a detector with its calibration).
    recrop: the model's landmark box -> training box (detectors.TRACKING), against drift.
    """
    tracks: list[Track] = []
    next_id = 0
    for t, frame in enumerate(frames):
        redetect = not tracks or (redetect_every > 0 and t % redetect_every == 0)
        points = scores = None
        if not redetect:
            boxes = np.stack([geometry.tight_box(tr.points) for tr in tracks])
            boxes = boxes if recrop is None else recrop.apply(boxes)
            redetect = not _trackable(boxes, frame.shape)
        if not redetect:
            points, scores = predictor(frame, boxes)
            redetect = bool(np.any(np.mean(scores, -1) < lost_score))
        if redetect:
            boxes = np.asarray(find_faces(frame), np.float32).reshape(-1, 4)
            tracks, next_id = _associate(boxes, tracks, next_id)
            points, scores = predictor(frame, boxes) if len(boxes) else (None, None)
        faces = []
        for i, tr in enumerate(tracks):
            tr.points, shown = points[i], points[i]
            if smooth is not None:
                if tr.filter is None:  # a new track starts its filter at its first frame
                    tr.filter = smoothing.one_euro_init(points[i])
                else:
                    tr.filter, shown = smoothing.one_euro_step(
                        tr.filter, points[i], 1.0 / fps, **dataclasses.asdict(smooth)
                    )
            faces.append(Face(tr.id, boxes[i], shown, scores[i], redetect))
        yield frame, faces
