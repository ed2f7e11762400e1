"""COFW: Caltech Occluded Faces in the Wild, 29 points, and the 68-point COFW-68 test set.

Release facts (checked against the RCPR demo code, the cofw68-benchmark code and the
readers in HRNet-Facial-Landmark-Detection, PIPNet and LUVLi):
  - `COFW_train_color.mat` / `COFW_test_color.mat` are MATLAB v7.3 (HDF5) files holding
    `IsTr`/`IsT` (N x 1 cell of uint8 images, some of them grey), `phisTr`/`phisT`
    (N x 87: 29 x, 29 y, 29 occlusion flags, 1 = occluded) and `bboxesTr`/`bboxesT`
    (N x 4: x, y, width, height); N = 1345 (train) and 507 (test).
  - HDF5 stores MATLAB arrays column-major, so h5py sees every array transposed:
    an H x W x 3 image as (3, W, H), the N x 87 matrix as (87, N).
  - COFW-68 (Ghiasi & Fowlkes): `COFW68_Data/test_annotations/<i>_points.mat` (v5) with
    `Points` (68 x 2) and `Occ` (68 flags, 1 = occluded) for the i-th test image (1-based),
    and `COFW68_Data/cofw68_test_bboxes.mat` (v5) with `bboxes` (507 x 4: x, y, w, h).
  - Points and boxes are MATLAB image coordinates (1-based: the benchmark plots them over
    `imshow`), so the builder subtracts 1, as for `.pts` files.

Visibility: COFW gives every coordinate, occluded or not, and the paper's NME mask v_k is
1 "where the ground truth is provided", so `visible` is 1 for all points and the
occlusion flags go to their own feature, `occluded`.
"""

from __future__ import annotations

import contextlib
import dataclasses

import h5py
import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import common

MAT_FILES = {"train": "COFW_train_color.mat", "test": "COFW_test_color.mat"}
IMAGE_VARS = {"train": "IsTr", "test": "IsT"}
SHAPE_VARS = {"train": "phisTr", "test": "phisT"}
BOX_VARS = {"train": "bboxesTr", "test": "bboxesT"}
# The release's image counts; a file with another count is an incomplete download.
NUM_IMAGES = {"train": 1345, "test": 507}
COFW68_BOXES = "COFW68_Data/cofw68_test_bboxes.mat"
COFW68_POINTS = "COFW68_Data/test_annotations/{index}_points.mat"
NUM_POINTS_29 = 29

_DESCRIPTION = """
Caltech Occluded Faces in the Wild (Burgos-Artizzu et al., ICCV 2013): 1,345 training and
507 test faces with heavy occlusion, 29 landmarks each, plus an occlusion flag per landmark.
COFW-68 (Ghiasi & Fowlkes, 2015) re-annotates the 507 test faces with the 68 points of
300W. Landmarks are 0-based (x, y) pixels (the release's 1-based MATLAB coordinates minus
1); `visible` is 1 everywhere because every coordinate is annotated, occluded or not, and
`occluded` carries the release's occlusion flags.
"""


@dataclasses.dataclass
class CofwConfig(common.LandmarkConfig):
    """num_landmarks: 29 (the original annotation) or 68 (COFW-68, test split only)."""

    num_landmarks: int = NUM_POINTS_29


def matlab_image(array: np.ndarray, where: str) -> np.ndarray:
    """uint8 [H, W, 3] RGB from an image as h5py reads it from a v7.3 file (transposed)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise common.DataError(f"{where}: image of type {array.dtype}, expected uint8")
    if array.ndim == 2:  # grey: (W, H)
        return np.repeat(array.T[..., None], 3, axis=-1)
    if array.ndim == 3 and array.shape[0] == 3:  # colour: (3, W, H)
        return np.ascontiguousarray(array.transpose(2, 1, 0))
    raise common.DataError(f"{where}: array of shape {array.shape} is not an image")


def xywh_to_box(xywh, where: str) -> np.ndarray:
    """(x_min, y_min, x_max, y_max), 0-based, from a 1-based MATLAB (x, y, width, height)."""
    xywh = np.asarray(xywh, np.float64).reshape(-1)
    if xywh.shape != (4,) or not np.all(np.isfinite(xywh)) or np.any(xywh[2:] <= 0):
        raise common.DataError(f"{where}: box {xywh.tolist()} is not a finite (x, y, w, h)")
    x, y, w, h = xywh - [1.0, 1.0, 0.0, 0.0]
    return np.array([x, y, x + w, y + h], np.float32)


def occlusion_flags(flags, where: str) -> np.ndarray:
    """bool [K] from the release's 0/1 occlusion flags."""
    flags = common.numeric(flags, where).reshape(-1)
    if not np.all(np.isin(flags, (0.0, 1.0))):
        raise common.DataError(f"{where}: occlusion flags must be 0 or 1, got {flags.tolist()}")
    return flags.astype(bool)


def parse_phis_row(row, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks float32 [29, 2] 0-based, occluded bool [29]) from one 87-value row."""
    row = common.numeric(row, where).reshape(-1)
    k = NUM_POINTS_29
    if row.shape != (3 * k,):
        raise common.DataError(f"{where}: {row.size} values, expected {3 * k} (x, y, occlusion)")
    landmarks = np.stack([row[:k], row[k : 2 * k]], axis=-1) - 1.0
    return landmarks.astype(np.float32), occlusion_flags(row[2 * k :], where)


def parse_points_mat(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks float32 [68, 2] 0-based, occluded bool [68]) from a COFW-68 `_points.mat`."""
    mat = common.load_mat5(data, name)
    points = common.mat_numeric(mat, "Points", name)
    if points.shape != (68, 2):
        raise common.DataError(f"{name}: 'Points' has shape {points.shape}, expected (68, 2)")
    occluded = occlusion_flags(common.mat_variable(mat, "Occ", name), f"{name}: 'Occ'")
    if occluded.shape != (68,):
        raise common.DataError(f"{name}: 'Occ' has {occluded.size} flags, expected 68")
    return (points - 1.0).astype(np.float32), occluded


@contextlib.contextmanager
def open_mat73(path: epath.Path):
    """The h5py.File of a MATLAB v7.3 file; an unreadable file is a DataError."""
    with path.open("rb") as fobj:
        try:
            mat = h5py.File(fobj, "r")
        except OSError as err:
            raise common.DataError(
                f"{path}: not a MATLAB v7.3 (HDF5) .mat file ({err}); use the *_color.mat files"
            ) from None
        with mat:
            yield mat


def mat73_matrix(mat: h5py.File, var: str, rows: int, columns: int, path) -> np.ndarray:
    """float64 [rows, columns] of a numeric MATLAB matrix (h5py reads it transposed)."""
    if var not in mat:
        raise common.DataError(f"{path}: no variable {var!r} (has {sorted(mat.keys())})")
    array = np.asarray(mat[var][()], np.float64).T
    if array.shape != (rows, columns):
        raise common.DataError(
            f"{path}: {var!r} has shape {array.shape}, expected ({rows}, {columns})"
        )
    return array


def mat73_cell_refs(mat: h5py.File, var: str, path) -> np.ndarray:
    """The object references of an N x 1 (or 1 x N) MATLAB cell array, in order."""
    if var not in mat:
        raise common.DataError(f"{path}: no variable {var!r} (has {sorted(mat.keys())})")
    refs = mat[var]
    if h5py.check_dtype(ref=refs.dtype) is None or min(refs.shape, default=0) != 1:
        raise common.DataError(f"{path}: {var!r} is not an N x 1 cell array of images")
    return refs[()].reshape(-1)


def mat73_image(mat: h5py.File, ref, where: str) -> np.ndarray:
    """The image behind one cell reference, as uint8 [H, W, 3] RGB."""
    try:
        array = mat[ref][()]
    except (KeyError, ValueError, OSError) as err:
        raise common.DataError(f"{where}: unreadable cell ({err})") from None
    return matlab_image(array, where)


def cofw29_examples(root: epath.Path, split: str, skip_corrupt: bool):
    """(key, example) for the 29-point annotation of one split."""
    path = root / MAT_FILES[split]
    count = NUM_IMAGES[split]
    with open_mat73(path) as mat:
        refs = mat73_cell_refs(mat, IMAGE_VARS[split], path)
        if len(refs) != count:
            raise common.DataError(f"{path}: {len(refs)} images, expected {count}")
        phis = mat73_matrix(mat, SHAPE_VARS[split], count, 3 * NUM_POINTS_29, path)
        boxes = mat73_matrix(mat, BOX_VARS[split], count, 4, path)

        def build(i):
            where = f"{path} row {i + 1}"
            landmarks, occluded = parse_phis_row(phis[i], f"{where} of {SHAPE_VARS[split]!r}")
            bbox = xywh_to_box(boxes[i], f"{where} of {BOX_VARS[split]!r}")
            image = mat73_image(mat, refs[i], f"{path} {IMAGE_VARS[split]}{{{i + 1}}}")
            image_id = f"{split}/{i + 1:04d}"
            return image_id, common.make_example(
                image, landmarks, image_id, bbox=bbox, occluded=occluded
            )

        yield from common.generate(range(count), build, skip_corrupt, f"cofw29/{split}")


def cofw68_examples(root: epath.Path, skip_corrupt: bool):
    """(key, example) for the COFW-68 re-annotation of the 507 test images."""
    path = root / MAT_FILES["test"]
    count = NUM_IMAGES["test"]
    box_path = root / COFW68_BOXES
    box_mat = common.load_mat5(box_path.read_bytes(), str(box_path))
    boxes = common.mat_numeric(box_mat, "bboxes", str(box_path))
    if boxes.shape != (count, 4):
        raise common.DataError(
            f"{box_path}: 'bboxes' has shape {boxes.shape}, expected ({count}, 4)"
        )
    with open_mat73(path) as mat:
        refs = mat73_cell_refs(mat, IMAGE_VARS["test"], path)
        if len(refs) != count:
            raise common.DataError(f"{path}: {len(refs)} images, expected {count}")

        def build(i):
            points_path = root / COFW68_POINTS.format(index=i + 1)
            landmarks, occluded = parse_points_mat(points_path.read_bytes(), str(points_path))
            bbox = xywh_to_box(boxes[i], f"{box_path} row {i + 1} of 'bboxes'")
            image = mat73_image(mat, refs[i], f"{path} IsT{{{i + 1}}}")
            image_id = f"test/{i + 1:04d}"
            return image_id, common.make_example(
                image, landmarks, image_id, bbox=bbox, occluded=occluded
            )

        yield from common.generate(range(count), build, skip_corrupt, "cofw68/test")


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for COFW (29 points) and COFW-68."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        CofwConfig(
            name="cofw29",
            description="The original 29-point annotation: 1,345 train and 507 test faces.",
            num_landmarks=29,
        ),
        CofwConfig(
            name="cofw68",
            description="The 68-point re-annotation of the 507 test faces (test split only).",
            num_landmarks=68,
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "cofw29"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    cofw29: download COFW_color.zip (the colour release, MATLAB v7.3 files) from the
    COFW page http://www.vision.caltech.edu/xpburgos/ICCV13/ and put its two files
    in manual_dir:
      manual_dir/COFW_train_color.mat
      manual_dir/COFW_test_color.mat
    cofw68: additionally put the COFW68_Data folder of
    https://github.com/golnazghiasi/cofw68-benchmark in manual_dir:
      manual_dir/COFW68_Data/cofw68_test_bboxes.mat
      manual_dir/COFW68_Data/test_annotations/1_points.mat ... 507_points.mat
    (cofw68 reads its images from COFW_test_color.mat.)
    """

    def _info(self) -> tfds.core.DatasetInfo:
        k = self.builder_config.num_landmarks
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=common.features(
                k, {"occluded": tfds.features.Tensor(shape=(k,), dtype=np.bool_)}
            ),
            homepage="http://www.vision.caltech.edu/xpburgos/ICCV13/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        if self.builder_config.num_landmarks == 68:
            points = [COFW68_POINTS.format(index=i + 1) for i in range(NUM_IMAGES["test"])]
            root = common.require(dl_manager.manual_dir, MAT_FILES["test"], COFW68_BOXES, *points)
            return {"test": self._generate_examples(root, "test")}
        root = common.require(dl_manager.manual_dir, *MAT_FILES.values())
        return {split: self._generate_examples(root, split) for split in MAT_FILES}

    def _generate_examples(self, root: epath.Path, split: str):
        skip = self.builder_config.skip_corrupt
        if self.builder_config.num_landmarks == 68:
            yield from cofw68_examples(root, skip)
        else:
            yield from cofw29_examples(root, split, skip)
