"""Faces found automatically: detectors that ship their weights, and their boxes calibrated to the
training crop (python -m sphm_jax.detect compare | calibrate --checkpoint WORKDIR).

A detector maps an RGB image to (boxes float32[F, 4] as (x_min, y_min, x_max, y_max) in the
project's pixel-centre coordinates, scores float32[F]). Each one runs from a package on the
registry with its model inside (the `detect` extra); nothing is downloaded:

  mtcnn  MTCNN (Zhang et al. 2016) on TensorFlow, package `mtcnn` (the default: best recall)
  dlib   dlib's HOG + linear SVM frontal detector, package `dlib-bin`
  lbp    OpenCV's LBP frontal cascade as shipped and run by scikit-image

A detector's box is not the box the model was trained to crop around (the tight box of the
landmarks); a Calibration maps one to the other: a shift of the centre and a scale of the side,
both in units of the detector box's side, fitted by medians over matched faces and stored in the
workdir (detector_calibration.json) beside the model it was measured with.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
from collections.abc import Callable

import numpy as np
from etils import epath

from sphm_jax.data.boxes import InputError, centres_sides, nms

DETECTORS = ("mtcnn", "dlib", "lbp")
DEFAULT_DETECTOR = "mtcnn"
CALIBRATION_FILE = "detector_calibration.json"
TRACKING = "landmarks"  # the calibration entry of the model's own landmark box (video.track)
_EXTRA = "pip install 'sphm_jax[detect]'"


class MissingDetector(InputError):
    """The detector's package is not installed; the message says what to install."""


def _mtcnn() -> Callable:
    try:
        from mtcnn import MTCNN  # pylint: disable=g-import-not-at-top
    except ImportError as err:
        raise MissingDetector(
            f"--detector mtcnn needs the mtcnn package ({_EXTRA}): {err}"
        ) from None
    net = MTCNN(stages="face_and_landmarks_detection", device="CPU:0")

    def detect(image):
        found = net.detect_faces(image, box_format="xyxy", output_type="json")
        boxes = [f["box"] for f in found]  # pixel indices of the first and last pixel edges
        return np.reshape(boxes, (-1, 4)) - 0.5, np.array([f["confidence"] for f in found])

    return detect


def _dlib() -> Callable:
    try:
        import dlib  # pylint: disable=g-import-not-at-top
    except ImportError as err:
        raise MissingDetector(f"--detector dlib needs dlib ({_EXTRA}): {err}") from None
    net = dlib.get_frontal_face_detector()

    def detect(image):
        rects, scores, _ = net.run(np.ascontiguousarray(image), 1, 0.0)  # upsample once
        boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]  # inclusive pixels
        return np.reshape(boxes, (-1, 4)) + np.array([-0.5, -0.5, 0.5, 0.5]), np.array(scores)

    return detect


def _lbp() -> Callable:
    try:
        import skimage.data  # pylint: disable=g-import-not-at-top
        from skimage.feature import Cascade  # pylint: disable=g-import-not-at-top
    except ImportError as err:
        raise MissingDetector(f"--detector lbp needs scikit-image ({_EXTRA}): {err}") from None
    net = Cascade(skimage.data.lbp_frontal_face_cascade_filename())

    def detect(image):
        side = max(image.shape[:2])
        found = net.detect_multi_scale(
            img=image, scale_factor=1.2, step_ratio=1, min_size=(24, 24), max_size=(side, side)
        )
        boxes = [(f["c"], f["r"], f["c"] + f["width"], f["r"] + f["height"]) for f in found]
        boxes = np.reshape(boxes, (-1, 4)) - 0.5
        return nms(boxes, np.ones(len(boxes)))  # the cascade returns overlapping windows

    return detect


_FACTORIES = {"mtcnn": _mtcnn, "dlib": _dlib, "lbp": _lbp}


def load_detector(name: str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """image uint8[H, W, 3] -> (boxes float32[F, 4], scores float32[F]), safe to call from threads."""
    if name not in _FACTORIES:
        raise InputError(f"--detector {name!r}: choose one of {', '.join(DETECTORS)} or none")
    detect, lock = _FACTORIES[name](), threading.Lock()  # the networks are not thread-safe

    def run(image):
        with lock:
            boxes, scores = detect(np.asarray(image, np.uint8))
        return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32)

    return run


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Detector box -> training box: centre + shift * side, a square of scale * side (side =
    sqrt of the detector box's area). The identity (shift 0, scale 1) is an uncalibrated box."""

    detector: str
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    faces: int = 0  # how many matched faces it was fitted on (0: not fitted)

    def apply(self, boxes) -> np.ndarray:
        centres, sides = centres_sides(boxes)
        centres = centres + np.asarray(self.shift) * sides[:, None]
        half = 0.5 * self.scale * sides[:, None]
        return np.concatenate([centres - half, centres + half], -1).astype(np.float32)


def fit_calibration(detector: str, detections, faces) -> Calibration:
    """The calibration that moves matched detector boxes [M, 4] onto the training boxes [M, 4].

    The crop depends on the training box's centre and longer side only, so those are fitted:
    medians, robust to the odd loose detection.
    """
    if len(detections) == 0:
        raise InputError(f"{detector}: no matched face to calibrate on")
    dc, ds = centres_sides(detections)
    faces = np.asarray(faces, np.float64)
    fc, longer = 0.5 * (faces[:, :2] + faces[:, 2:]), np.max(faces[:, 2:] - faces[:, :2], -1)
    shift = np.median((fc - dc) / ds[:, None], axis=0)
    return Calibration(detector, float(np.median(longer / ds)), tuple(map(float, shift)), len(ds))


def write_calibration(workdir, calibration: Calibration, measured: dict) -> epath.Path:
    """Adds (or replaces) the detector's entry of WORKDIR/detector_calibration.json."""
    path = epath.Path(workdir) / CALIBRATION_FILE
    table = json.loads(path.read_text()) if path.exists() else {}
    table[calibration.detector] = {**dataclasses.asdict(calibration), "measured": measured}
    path.write_text(json.dumps(table, indent=2) + "\n")
    return path


def read_calibration(checkpoint, detector: str) -> Calibration | None:
    """The detector's calibration stored with a workdir (or beside a checkpoint directory)."""
    path = epath.Path(checkpoint)
    for candidate in (path / CALIBRATION_FILE, path.parent / CALIBRATION_FILE):
        if candidate.exists():
            try:
                entry = json.loads(candidate.read_text()).get(detector)
            except json.JSONDecodeError as err:
                raise InputError(f"{candidate}: not valid JSON ({err})") from None
            if entry is None:
                return None
            fields = {f.name for f in dataclasses.fields(Calibration)}
            entry = {k: v for k, v in entry.items() if k in fields}
            return Calibration(**{**entry, "shift": tuple(entry.get("shift", (0.0, 0.0)))})
    return None


def face_boxes(detect, calibration: Calibration | None, image) -> np.ndarray:
    """Training boxes float32[F, 4] of the faces a detector finds, best score first."""
    boxes, scores = detect(image)
    boxes = boxes[np.argsort(-scores, kind="stable")]
    return boxes if calibration is None else calibration.apply(boxes)


def face_finder(name: str, workdir=None) -> Callable[[np.ndarray], np.ndarray]:
    """image -> training boxes [F, 4]: the detector `name` with the calibration stored in
    `workdir` (None, or none stored there: the detector's own boxes)."""
    detect = load_detector(name)
    calibration = None if workdir is None else read_calibration(workdir, name)
    return functools.partial(face_boxes, detect, calibration)
