"""AFLW-19: the 19-point AFLW protocol of Zhu et al. (CFSS), 20,000 train and 4,386 test faces.

Release facts (checked against the AFLW readers of PIPNet, SAN and FaRL/facer):
  - `AFLWinfo_release.mat` is a MATLAB v5 file with, for N = 24,386 faces:
    `data` N x 38 (19 x, then 19 y), `mask_new` N x 19 (1 = visible),
    `bbox` N x 4 (x_min, x_max, y_min, y_max), `nameList` N x 1 cell of image paths
    relative to AFLW's `flickr/` folder (`0/...`, `2/...`, `3/...`; several faces can
    share an image) and `ra` 1 x N, a 1-based permutation of the rows whose first
    20,000 entries are the training faces and the other 4,386 the test faces.
  - "Frontal" test subset (1,314 faces): the test faces whose 19 points are all
    visible (`mask_new` all 1), as FaRL/facer select it; SAN additionally requires
    every point to lie strictly inside the box.
  - The coordinates come from the AFLW database through the CFSS release; neither says
    where the pixel origin is, and the readers above use them as they are, so this
    builder does too (no 1-based shift, unlike COFW and `.pts` files).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import common

MAT_FILE = "AFLWinfo_release.mat"
# Where the AFLW download puts `flickr/`, tried in this order.
IMAGE_DIRS = ("flickr", "data/flickr", "aflw/data/flickr")
# The release's sizes; a file with other sizes is a different or truncated release.
NUM_FACES = 24386
NUM_TRAIN = 20000
NUM_POINTS = 19

_DESCRIPTION = """
AFLW-19 (Koestinger et al. 2011; 19-point protocol of Zhu et al., CVPR 2015/2016):
20,000 training and 4,386 test faces from Flickr in a wide range of poses, with 19
landmarks (the 21 AFLW points without the two ear lobes) and a visibility mask.
`frontal` marks the faces whose 19 points are all visible; in the test split they form
the 1,314-face "Frontal" subset. `bbox` is the release's face box.
"""


def matlab_string(entry, where: str) -> str:
    """A Python str from one element of a MATLAB cell of char arrays, as loadmat returns it."""
    while isinstance(entry, np.ndarray) and entry.dtype == object and entry.size == 1:
        entry = entry.reshape(-1)[0]
    if isinstance(entry, np.ndarray) and entry.dtype.kind == "U" and entry.size == 1:
        entry = entry.reshape(-1)[0]
    if not isinstance(entry, str) or not entry.strip():
        raise common.DataError(f"{where}: not an image path ({entry!r})")
    return entry.strip().replace("\\", "/")


def release_arrays(mat: dict, path: str) -> dict:
    """The release's arrays by name, shapes checked: data, mask_new, bbox, ra (0-based), nameList."""
    missing = [v for v in ("data", "mask_new", "bbox", "ra", "nameList") if v not in mat]
    if missing:
        raise common.DataError(f"{path}: missing variable(s) {', '.join(missing)}")
    arrays = {
        "data": common.mat_numeric(mat, "data", path),
        "mask_new": common.mat_numeric(mat, "mask_new", path),
        "bbox": common.mat_numeric(mat, "bbox", path),
        "nameList": np.asarray(mat["nameList"], object).reshape(-1),
    }
    expected = {"data": (NUM_FACES, 2 * NUM_POINTS), "mask_new": (NUM_FACES, NUM_POINTS)}
    expected |= {"bbox": (NUM_FACES, 4), "nameList": (NUM_FACES,)}
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise common.DataError(
                f"{path}: {name!r} has shape {arrays[name].shape}, expected {shape}"
            )
    arrays["ra"] = split_order(mat["ra"], path)
    return arrays


def split_order(ra, path: str) -> np.ndarray:
    """0-based row order from the release's `ra`, checked to be a permutation of 1..N."""
    ra = common.numeric(ra, f"{path}: 'ra'").reshape(-1)
    if ra.shape != (NUM_FACES,) or not np.array_equal(np.sort(ra), np.arange(1, NUM_FACES + 1)):
        raise common.DataError(f"{path}: 'ra' is not a permutation of 1..{NUM_FACES}")
    return ra.astype(np.int64) - 1


def parse_row(arrays: dict, row: int, path: str) -> dict:
    """landmarks [19, 2], visible [19], bbox (x_min, y_min, x_max, y_max) and name of one face."""
    where = f"{path} row {row + 1}"
    visible = arrays["mask_new"][row]
    if not np.all(np.isin(visible, (0.0, 1.0))):
        raise common.DataError(
            f"{where} of 'mask_new': values must be 0 or 1, got {visible.tolist()}"
        )
    x_min, x_max, y_min, y_max = arrays["bbox"][row]
    if not (np.isfinite([x_min, x_max, y_min, y_max]).all() and x_min < x_max and y_min < y_max):
        raise common.DataError(
            f"{where} of 'bbox': degenerate box {arrays['bbox'][row].tolist()} "
            "(x_min, x_max, y_min, y_max)"
        )
    return {
        "landmarks": arrays["data"][row].reshape(2, NUM_POINTS).T.astype(np.float32),
        "visible": visible.astype(np.float32),
        "bbox": np.array([x_min, y_min, x_max, y_max], np.float32),
        "name": matlab_string(arrays["nameList"][row], f"{where} of 'nameList'"),
    }


def load_release(path: epath.Path) -> dict:
    """The checked arrays of AFLWinfo_release.mat."""
    return release_arrays(common.load_mat5(path.read_bytes(), str(path)), str(path))


def image_dir(root: epath.Path) -> epath.Path:
    """AFLW's `flickr/` folder inside manual_dir."""
    for relative in IMAGE_DIRS:
        if (root / relative).is_dir():
            return root / relative
    raise common.DataError(
        f"manual_dir {root} is incomplete: missing flickr/ (AFLW's aflw/data/flickr folder; "
        f"looked for {', '.join(IMAGE_DIRS)})"
    )


def aflw_examples(root: epath.Path, split: str, skip_corrupt: bool):
    """(key, example) for the faces of one split, in the release's `ra` order."""
    path = root / MAT_FILE
    arrays = load_release(path)
    images = image_dir(root)
    rows = arrays["ra"][:NUM_TRAIN] if split == "train" else arrays["ra"][NUM_TRAIN:]

    def build(row):
        face = parse_row(arrays, int(row), str(path))
        image_id = f"{face['name']}#{row + 1}"
        example = common.make_example(
            common.read_image(images / face["name"]),
            face["landmarks"],
            image_id,
            visible=face["visible"],
            bbox=face["bbox"],
            frontal=bool(np.all(face["visible"] == 1)),
            image_path=face["name"],
            face_index=int(row) + 1,
        )
        return f"{int(row) + 1:05d}", example

    yield from common.generate(rows, build, skip_corrupt, f"aflw/{split}")


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for AFLW-19."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        common.LandmarkConfig(
            name="aflw19",
            description="The 19-point protocol: 20,000 train and 4,386 test faces.",
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "aflw19"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    1. AFLWinfo_release.mat, the 19-point annotation of Zhu et al. (CFSS), from
       http://mmlab.ie.cuhk.edu.hk/projects/compositional.html:
         manual_dir/AFLWinfo_release.mat
    2. The AFLW images (from the AFLW page of TU Graz, after registering): extract the
       image archives and put their aflw/data/flickr folder in manual_dir:
         manual_dir/flickr/0/image00002.jpg, manual_dir/flickr/2/..., manual_dir/flickr/3/...
       (manual_dir/aflw/data/flickr/... is found too).
    """

    def _info(self) -> tfds.core.DatasetInfo:
        metadata = {
            "frontal": tfds.features.Scalar(
                dtype=np.bool_, doc="All 19 points visible (the 'Frontal' test subset)."
            ),
            "image_path": tfds.features.Text(doc="The release's nameList entry."),
            "face_index": tfds.features.Scalar(
                dtype=np.int32, doc="1-based row of the face in AFLWinfo_release.mat."
            ),
        }
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=common.features(NUM_POINTS, metadata),
            homepage="http://mmlab.ie.cuhk.edu.hk/projects/compositional.html",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = common.require(dl_manager.manual_dir, MAT_FILE)
        image_dir(root)
        return {split: self._generate_examples(root, split) for split in ("train", "test")}

    def _generate_examples(self, root: epath.Path, split: str):
        yield from aflw_examples(root, split, self.builder_config.skip_corrupt)
