"""What every landmark builder shares: the features, image reading, checks and the skip policy.

Every builder yields the same features (../shared/DESIGN.md), so one input
pipeline reads them all:
  image      uint8 [H, W, 3] RGB
  landmarks  float32 [K, 2], (x, y) in image pixels, pixel centres at integers
  visible    float32 [K] in {0, 1}
  bbox       float32 [4] = (x_min, y_min, x_max, y_max) in pixels
  image_id   string
plus the dataset's own metadata (subset, attributes, ...).

Rules for awkward annotations, the same in every builder:
  - a landmark with a non-finite coordinate is kept as invisible, at (0, 0);
  - landmarks outside the image are kept as they are (faces are cropped loosely later);
  - no box, or a degenerate one (width or height <= 0): an error, or a skip when
    the config asks; builders without boxes in their release pass the tight
    box of the visible landmarks, as the paper's d_box does.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import scipy.io
import tensorflow_datasets as tfds
from etils import epath

from sphm_jax import image_io
from sphm_jax.landmark_io import AnnotationError


class DataError(ValueError):
    """A missing, corrupt or inconsistent file of a dataset; the message names it."""


@dataclasses.dataclass
class LandmarkConfig(tfds.core.BuilderConfig):
    """skip_corrupt: skip (and count in the build log) corrupt examples instead of failing."""

    skip_corrupt: bool = False


def features(
    num_landmarks: int, metadata: Mapping[str, Any] | None = None, image_format: str = "jpeg"
) -> tfds.features.FeaturesDict:
    """The common features of a K-point builder, plus its own metadata features."""
    spec = {
        "image": tfds.features.Image(shape=(None, None, 3), encoding_format=image_format),
        "landmarks": tfds.features.Tensor(shape=(num_landmarks, 2), dtype=np.float32),
        "visible": tfds.features.Tensor(shape=(num_landmarks,), dtype=np.float32),
        "bbox": tfds.features.Tensor(shape=(4,), dtype=np.float32),
        "image_id": tfds.features.Text(),
    }
    spec.update(metadata or {})
    return tfds.features.FeaturesDict(spec)


def require(manual_dir, *relative_paths: str) -> epath.Path:
    """The manual_dir, after checking each required file or folder is in it."""
    root = epath.Path(manual_dir)
    missing = [p for p in relative_paths if not (root / p).exists()]
    if missing:
        raise DataError(
            f"manual_dir {root} is incomplete: missing {', '.join(missing)} "
            f"(see the builder's MANUAL_DOWNLOAD_INSTRUCTIONS)"
        )
    return root


def read_image(path) -> np.ndarray:
    """uint8 [H, W, 3] RGB (sphm_jax.image_io's rules); an unreadable file is a DataError."""
    try:
        return image_io.read_image(path)
    except image_io.ImageError as err:
        raise DataError(str(err)) from None


def load_mat5(data: bytes, name: str) -> dict:
    """scipy.io.loadmat of a MATLAB v5 .mat file's bytes; an unreadable file is a DataError."""
    try:
        return scipy.io.loadmat(io.BytesIO(data))
    except (
        scipy.io.matlab.MatReadError,
        ValueError,
        TypeError,
        NotImplementedError,
        OSError,
    ) as err:
        raise DataError(f"{name}: not a readable MATLAB v5 .mat file ({err})") from None


def mat_variable(mat: dict, variable: str, name: str):
    """mat[variable], or a DataError listing the variables the file has."""
    if variable not in mat:
        variables = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{name}: no variable {variable!r} (has {variables})")
    return mat[variable]


def same_stem_image(pts_path, suffixes=(".jpg", ".png")) -> epath.Path:
    """The image beside a `.pts` file (same stem); a missing one is never skipped."""
    pts_path = epath.Path(pts_path)
    for suffix in suffixes:
        path = pts_path.with_suffix(suffix)
        if path.exists():
            return path
    wanted = " or ".join(pts_path.stem + s for s in suffixes)
    raise FileNotFoundError(f"{pts_path}: no image {wanted} beside it in manual_dir")


def tight_box(landmarks: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(x_min, y_min, x_max, y_max) of the visible landmarks."""
    pts = landmarks[visible > 0]
    if len(pts) == 0:
        raise DataError("no visible landmark to take a box from")
    return np.concatenate([pts.min(0), pts.max(0)]).astype(np.float32)


def make_example(image, landmarks, image_id: str, visible=None, bbox=None, **metadata) -> dict:
    """One example in the common features, with the rules of this module applied."""
    landmarks = np.asarray(landmarks, np.float64)
    k = landmarks.shape[0]
    visible = np.ones(k, np.float32) if visible is None else np.asarray(visible, np.float32)
    if landmarks.shape != (k, 2) or visible.shape != (k,):
        raise DataError(
            f"{image_id}: landmarks {landmarks.shape} and visible {visible.shape} "
            f"do not describe the same {k} points"
        )
    finite = np.all(np.isfinite(landmarks), axis=-1)
    visible = np.where(finite, visible, 0.0).astype(np.float32)
    landmarks = np.where(finite[:, None], landmarks, 0.0).astype(np.float32)
    if bbox is None:
        bbox = tight_box(landmarks, visible)
    bbox = np.asarray(bbox, np.float32)
    if (
        bbox.shape != (4,)
        or not np.all(np.isfinite(bbox))
        or bbox[2] <= bbox[0]
        or bbox[3] <= bbox[1]
    ):
        raise DataError(f"{image_id}: degenerate box {bbox.tolist()} (x_min, y_min, x_max, y_max)")
    return {
        "image": image,
        "landmarks": landmarks,
        "visible": visible,
        "bbox": bbox,
        "image_id": image_id,
        **metadata,
    }


def generate(
    items: Iterable[Any], build: Callable[[Any], tuple[str, dict]], skip_corrupt: bool, name: str
) -> Iterator[tuple[str, dict]]:
    """Yields build(item) for each item; a corrupt one raises, or is skipped and counted in the log."""
    skipped = []
    for item in items:
        try:
            yield build(item)
        except (DataError, AnnotationError) as err:
            if not skip_corrupt:
                raise
            skipped.append(str(err))
            logging.warning("%s: skipped a corrupt example: %s", name, err)
    if skipped:
        logging.warning("%s: skipped %d corrupt example(s) in all", name, len(skipped))
