"""Face boxes (x_min, y_min, x_max, y_max) in image pixels: box files, checks, overlaps, matching.

A box file maps image names to boxes: JSON ({"image": box or [box, ...]} or
[{"image": ..., "box": [...]}, ...]) or CSV (image,x_min,y_min,x_max,y_max).
Every bad value is an InputError naming the file and the record.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
from etils import epath

from sphm_jax import geometry
from sphm_jax.data import landmark_io

BOX_FIELDS = ("x_min", "y_min", "x_max", "y_max")


class InputError(ValueError):
    """A bad input file, box or setting; the message names it."""


def whole_image_box(height: int, width: int) -> np.ndarray:
    """The box whose edges are the image's: with crop_scale 1 the crop is the (padded) image."""
    return np.array([-0.5, -0.5, width - 0.5, height - 0.5], np.float32)


def check_box(box, height: int, width: int, where: str) -> np.ndarray:
    """The box as float32[4], or an InputError if it is degenerate or misses the image."""
    box = np.asarray(box, np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise InputError(f"{where}: a box needs 4 finite numbers (x_min, y_min, x_max, y_max)")
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        raise InputError(
            f"{where}: degenerate box {box.tolist()} (x_max <= x_min or y_max <= y_min)"
        )
    if x1 < -0.5 or y1 < -0.5 or x0 > width - 0.5 or y0 > height - 0.5:
        raise InputError(f"{where}: box {box.tolist()} lies outside the {width}x{height} image")
    return box.astype(np.float32)


def _box_values(values, where: str) -> list[float]:
    try:
        box = [float(v) for v in values]
    except (TypeError, ValueError):
        raise InputError(f"{where}: box values must be numbers, got {values!r}") from None
    if len(box) != 4:
        raise InputError(
            f"{where}: a box has 4 numbers (x_min, y_min, x_max, y_max), got {values!r}"
        )
    return box


def _json_boxes(text: str, name: str) -> dict[str, list[list[float]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{name}: not valid JSON ({err})") from None
    boxes: dict[str, list[list[float]]] = {}
    if isinstance(data, dict):  # {"image": box or [box, ...]}
        for image, value in data.items():
            many = isinstance(value, list) and value and isinstance(value[0], (list, tuple))
            for i, box in enumerate(value if many else [value]):
                boxes.setdefault(image, []).append(_box_values(box, f"{name}: {image!r}[{i}]"))
    elif isinstance(data, list):  # [{"image": ..., "box": [...]}, ...]
        for i, record in enumerate(data):
            if not (isinstance(record, dict) and "image" in record and "box" in record):
                raise InputError(f"{name}: record {i} needs the keys 'image' and 'box'")
            box = _box_values(record["box"], f"{name}: record {i}")
            boxes.setdefault(str(record["image"]), []).append(box)
    else:
        raise InputError(
            f"{name}: expected an object or a list of records, got {type(data).__name__}"
        )
    return boxes


def _csv_boxes(text: str, name: str) -> dict[str, list[list[float]]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [f for f in ("image", *BOX_FIELDS) if f not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{name}: the header lacks the column(s) {', '.join(missing)}")
    boxes: dict[str, list[list[float]]] = {}
    for row in reader:
        where = f"{name}: line {reader.line_num}"
        box = _box_values([row[f] for f in BOX_FIELDS], where)
        boxes.setdefault(row["image"], []).append(box)
    return boxes


def read_boxes(path) -> dict[str, list[list[float]]]:
    """image name -> its face boxes, from a .json or .csv box file (formats in docs/predict.md)."""
    path = epath.Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the box file ({err})") from None
    if path.suffix.lower() == ".json":
        return _json_boxes(text, str(path))
    if path.suffix.lower() == ".csv":
        return _csv_boxes(text, str(path))
    raise InputError(f"{path}: a box file is .json or .csv")


def pts_box(image_path) -> np.ndarray:
    """The tight box of the finite points of the .pts file beside an image."""
    pts = epath.Path(image_path).with_suffix(".pts")
    if not pts.exists():
        raise InputError(f"{image_path}: no {pts.name} beside it for --boxes=pts")
    points = landmark_io.read_pts(pts)
    finite = np.all(np.isfinite(points), axis=-1)
    if not finite.any():
        raise InputError(f"{pts}: no finite point to take a box from")
    return geometry.tight_box(points, finite)


def iou(a, b) -> np.ndarray:
    """Intersection over union of boxes a[M, 4] and b[N, 4], float[M, N]."""
    a, b = np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[None]
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
    return inter / (area(a) + area(b) - inter)


def nms(boxes, scores, threshold: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Greedy non-maximum suppression: the boxes that overlap no better-scored kept box."""
    order, keep = np.argsort(-np.asarray(scores), kind="stable"), []
    overlaps = iou(boxes, boxes)
    for i in order:
        if all(overlaps[i, j] <= threshold for j in keep):
            keep.append(i)
    return np.asarray(boxes)[keep], np.asarray(scores)[keep]


def centres_sides(boxes) -> tuple[np.ndarray, np.ndarray]:
    """(centres [B, 2], sides [B]) of boxes, a side being sqrt(w * h)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    wh = boxes[:, 2:] - boxes[:, :2]
    return 0.5 * (boxes[:, :2] + boxes[:, 2:]), np.sqrt(wh[:, 0] * wh[:, 1])


def match(detections, faces) -> np.ndarray:
    """For each face box [N, 4], the index of the detection [M, 4] that found it, or -1.

    A detection finds a face when its centre lies inside the face's box and its side
    (sqrt of the area) is within a factor 2 of the face's: IoU would punish the detectors'
    own box conventions, which calibration removes later. Each detection finds one face,
    the one nearest its centre.
    """
    found = np.full(len(faces), -1)
    if len(detections) == 0 or len(faces) == 0:
        return found
    dc, ds = centres_sides(detections)
    fc, fs = centres_sides(faces)
    faces = np.asarray(faces, np.float64)
    inside = np.all((dc[:, None] >= faces[None, :, :2]) & (dc[:, None] <= faces[None, :, 2:]), -1)
    ratio = ds[:, None] / fs[None, :]
    ok = inside & (ratio >= 0.5) & (ratio <= 2.0)
    dist = np.where(ok, np.linalg.norm(dc[:, None] - fc[None], axis=-1), np.inf)
    for d, f in sorted(zip(*np.nonzero(ok)), key=lambda df: dist[df]):
        if found[f] < 0 and d not in found:
            found[f] = d
    return found
