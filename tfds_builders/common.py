"""What every landmark builder shares: the features, image reading, checks and the skip policy.

Every builder yields the same features (../shared/DESIGN.md), so one input
pipeline reads them all:
  image      uint8 [H, W, 3] RGB
  landmarks  float32 [K, 2], (x, y) in image pixels, pixel centres at integers
  visible    float32 [K] in {0, 1}
  bbox       float32 [4] = (x_min, y_min, x_max, y_max) in pixels
  image_id   string
plus the dataset's own metadata (subset, attributes, ...).

Rules for awkward annotations, the same in every builder (make_example applies them):
  - a landmark with a non-finite coordinate (NaN, inf, or beyond float32) is kept as
    invisible, at (0, 0); text formats with no such marker (`.pts`) reject it instead;
  - landmarks outside the image are kept as they are, visible (faces are cropped loosely
    later; the crop and the augmentation never clip or hide them);
  - no box, or a degenerate one (non-finite, or width or height <= 0): an error naming
    the example, or a skip when the config asks (skip_corrupt); builders without boxes in
    their release pass the tight box of the visible landmarks, as the paper's d_box does.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import scipy.io
import tensorflow_datasets as tfds
from etils import epath

from sphm_jax import geometry
from sphm_jax.data import image_io
from sphm_jax.data.landmark_io import AnnotationError


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
    """uint8 [H, W, 3] RGB (sphm_jax.data.image_io's rules); an unreadable file is a DataError."""
    try:
        return image_io.read_image(path)
    except image_io.ImageError as err:
        raise DataError(str(err)) from None


# MAT v5 data types -> item size (None: a container of further elements).
_MAT5_TYPES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8, 14: None, 15: None}
_MAT5_TYPES.update({16: 1, 17: 2, 18: 4})
_MAT5_MAX_BYTES = 1 << 32  # a decompressed element larger than this is refused, not allocated
_MAT5_MAX_DEPTH = 64


def _mat5_elements(data: bytes, order: str, name: str):
    """(byte offset, type, payload) of each data element; bad tags are a DataError."""
    pos = 0
    while pos < len(data):
        if len(data) - pos < 8:
            raise DataError(f"{name}: truncated data element tag at byte {pos}")
        mdtype, nbytes = struct.unpack_from(order + "II", data, pos)
        if mdtype >> 16:  # small element: type and size in 4 bytes, data in the next 4
            mdtype, nbytes, start, padded = mdtype & 0xFFFF, mdtype >> 16, pos + 4, pos + 8
        else:
            start = pos + 8
            padded = start + (nbytes if mdtype == 15 else -(-nbytes // 8) * 8)
        item = _MAT5_TYPES.get(mdtype, 0)
        if item == 0 or start + nbytes > len(data) or (item and nbytes % item):
            raise DataError(
                f"{name}: bad data element (type {mdtype}, {nbytes} bytes, {len(data) - pos} left)"
            )
        yield pos, mdtype, data[start : start + nbytes]
        pos = padded


def _mat5_matrix(payload: bytes, order: str, name: str, depth: int) -> None:
    """Checks one miMATRIX: flags, dims, name, then the parts its class needs, and their sizes."""
    if not payload:
        return  # an empty cell element
    parts = list(_mat5_elements(payload, order, name))
    head = [mdtype for _, mdtype, _ in parts[:3]]
    if head != [6, 5, 1] or len(parts[0][2]) != 8 or len(parts[1][2]) < 8:
        raise DataError(f"{name}: malformed array header at byte {parts[0][0] if parts else 0}")
    flags = struct.unpack_from(order + "I", parts[0][2])[0]
    kind, is_complex = flags & 0xFF, bool(flags & 0x800)
    dims = struct.unpack(order + f"{len(parts[1][2]) // 4}i", parts[1][2])
    if min(dims) < 0 or math.prod(dims) > _MAT5_MAX_BYTES:
        raise DataError(f"{name}: impossible array dimensions {dims}")
    count, rest = math.prod(dims), parts[3:]
    if kind == 2 and len(rest) >= 2 and rest[0][1] == 5 and len(rest[0][2]) == 4:
        width = max(
            struct.unpack(order + "i", rest[0][2])[0], 1
        )  # struct: field names, then fields
        count *= len(rest[1][2]) // width
        rest = rest[2:]
    if kind in (1, 2):  # cell, struct: one miMATRIX per element (and field)
        if len(rest) != count or any(mdtype != 14 for _, mdtype, _ in rest):
            raise DataError(f"{name}: cell or struct array with {len(rest)} of {count} elements")
        for _, _, inner in rest:
            _mat5_matrix(inner, order, name, depth + 1)
    elif kind == 4 or 6 <= kind <= 15:  # char or numeric: real part, imaginary part if complex
        sizes = [len(p) // _MAT5_TYPES[t] for _, t, p in rest if t not in (14, 15)]
        if len(sizes) != len(rest) or len(rest) != 1 + is_complex:
            raise DataError(f"{name}: array of class {kind} has {len(rest)} data parts")
        if any(n != count for n in sizes) and rest[0][1] != 16:  # utf-8 chars vary in size
            raise DataError(f"{name}: array of {dims} holds {sizes} values")
    else:
        raise DataError(f"{name}: unsupported MATLAB array class {kind} (sparse, object, ...)")


def check_mat5_elements(data: bytes, order: str, name: str, depth: int = 0) -> None:
    """Walks a v5 stream before scipy reads it: scipy trusts the tags and can segfault on bad ones."""
    if depth > _MAT5_MAX_DEPTH:
        raise DataError(f"{name}: elements nested deeper than {_MAT5_MAX_DEPTH}")
    for pos, mdtype, payload in _mat5_elements(data, order, name):
        if mdtype == 15:
            inflater = zlib.decompressobj()
            try:
                inner = inflater.decompress(payload, _MAT5_MAX_BYTES)
            except zlib.error as err:
                raise DataError(f"{name}: corrupt compressed element at byte {pos} ({err})")
            if inflater.unconsumed_tail:
                raise DataError(f"{name}: compressed element at byte {pos} is too large")
            check_mat5_elements(inner, order, name, depth + 1)
        elif mdtype == 14:
            _mat5_matrix(payload, order, name, depth + 1)


def load_mat5(data: bytes, name: str) -> dict:
    """scipy.io.loadmat of a MATLAB v5 .mat file's bytes; an unreadable file is a DataError."""
    if len(data) < 128 or data[126:128] not in (b"IM", b"MI"):
        raise DataError(f"{name}: not a readable MATLAB v5 .mat file (no v5 header)")
    check_mat5_elements(data[128:], "<" if data[126:128] == b"IM" else ">", name)
    try:
        return scipy.io.loadmat(io.BytesIO(data))
    except Exception as err:  # pylint: disable=broad-except
        # Hostile bytes make scipy raise almost anything (IndexError, UnboundLocalError, ...).
        raise DataError(f"{name}: not a readable MATLAB v5 .mat file ({err!r})") from None


def mat_variable(mat: dict, variable: str, name: str):
    """mat[variable], or a DataError listing the variables the file has."""
    if variable not in mat:
        variables = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{name}: no variable {variable!r} (has {variables})")
    return mat[variable]


def numeric(value, where: str) -> np.ndarray:
    """float64 array of a .mat value; text, cells or structs there are a DataError."""
    try:
        array = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: not a numeric array ({type(value).__name__})") from None
    return array


def mat_numeric(mat: dict, variable: str, name: str) -> np.ndarray:
    """mat[variable] as a float64 array, or a DataError naming the file and the variable."""
    return numeric(mat_variable(mat, variable, name), f"{name}: {variable!r}")


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
    if not np.any(np.asarray(visible) > 0):
        raise DataError("no visible landmark to take a box from")
    return geometry.tight_box(np.asarray(landmarks), np.asarray(visible))


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
