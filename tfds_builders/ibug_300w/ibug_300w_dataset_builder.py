"""300W: 68-point faces from LFPW, HELEN, AFW and iBUG, and the 300W private test set.

Release facts (checked against the 300-W pages of iBUG, and the readers in LUVLi
`splits_prep/`, PIPNet `lib/preprocess.py` and HRNet-Facial-Landmark-Detection):
  - `afw.zip`, `helen.zip`, `ibug.zip`, `lfpw.zip` extract to `afw/`, `helen/{trainset,testset}/`,
    `ibug/`, `lfpw/{trainset,testset}/`; the private test set `300w.zip.001-004` to
    `300W/01_Indoor/` and `300W/02_Outdoor/` (300 faces each). Each face is one `.pts` file
    (68 points) with a same-stem image (`.jpg`; `.png` in lfpw and 300W); an image with
    several faces is stored once per face (`<id>_1.jpg`, `<id>_2.jpg`).
  - Counts: lfpw 811 + 224, helen 2,000 + 330, afw 337, ibug 135, 300W 600. Split I trains
    on the first six (3,837) and tests on 300W (600); split II trains on lfpw and helen
    trainsets and afw (3,148) and tests on common (lfpw + helen testsets, 554) and
    challenge (ibug, 135).
  - `bounding_boxes.zip` extracts to `Bounding Boxes/bounding_boxes_<set>.mat` (MATLAB v5)
    for afw, helen_trainset, helen_testset, lfpw_trainset, lfpw_testset and ibug: a 1 x N
    cell `bounding_boxes` of structs (imgName, bb_detector, bb_ground_truth), boxes as
    [x_min y_min x_max y_max]. The 300W private test set has no box file.
  - "The annotations are saved in the MATLAB convention of 1 being the first index"
    (300-W readme): points and boxes are 1-based, so both get 1 subtracted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from sphm_jax.data.landmark_io import read_pts
from tfds_builders import common

NUM_LANDMARKS = 68
BOX_DIR = "Bounding Boxes"
# Subset folder -> the `bounding_boxes_<set>.mat` with its official boxes (None: no file).
SUBSETS = {
    "lfpw/trainset": "lfpw_trainset",
    "lfpw/testset": "lfpw_testset",
    "helen/trainset": "helen_trainset",
    "helen/testset": "helen_testset",
    "afw": "afw",
    "ibug": "ibug",
    "300W/01_Indoor": None,
    "300W/02_Outdoor": None,
}

_DESCRIPTION = """
300 Faces In-the-Wild (Sagonas et al., 2013/2016): faces from LFPW, HELEN, AFW and iBUG
re-annotated with the 68 Multi-PIE points, and the 600 faces of the 300W private test set
(indoor and outdoor). Two configs follow the two protocols of the literature: `split1`
(train 3,837 / test 600) and `split2` (train 3,148 / test_common 554 / test_challenge 135).
Landmarks are 0-based (x, y) pixels (the release's 1-based values minus 1); `bbox` is the
release's `bb_ground_truth` box where one exists, else the tight box of the landmarks;
`subset` names the source folder, e.g. `helen/testset`.
"""


@dataclasses.dataclass
class Ibug300wConfig(common.LandmarkConfig):
    """splits: split name -> the subset folders it is made of."""

    splits: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def box_file(subset: str) -> str | None:
    """The box file of a subset, relative to manual_dir, or None."""
    mat = SUBSETS[subset]
    return None if mat is None else f"{BOX_DIR}/bounding_boxes_{mat}.mat"


def parse_box_mat(data: bytes, name: str) -> dict[str, np.ndarray]:
    """{image stem: 0-based bb_ground_truth float32 [4]} from a `bounding_boxes_*.mat`."""
    mat = common.load_mat5(data, name)
    common.mat_variable(mat, "bounding_boxes", name)
    boxes = {}
    for i, cell in enumerate(np.ravel(mat["bounding_boxes"]), 1):
        try:
            record = np.ravel(cell)[0]
            image = str(np.ravel(record["imgName"])[0])
            box = np.ravel(record["bb_ground_truth"]).astype(np.float64)
        except (IndexError, KeyError, ValueError, TypeError) as err:
            raise common.DataError(
                f"{name}: entry {i} is not a struct with imgName and bb_ground_truth ({err})"
            ) from None
        stem = epath.Path(image).stem
        if box.shape != (4,):
            raise common.DataError(f"{name}: entry {i} ({image}): {box.size} box values, not 4")
        if stem in boxes:
            raise common.DataError(f"{name}: entry {i}: a second box for {image}")
        boxes[stem] = (box - 1.0).astype(np.float32)
    return boxes


def subset_faces(root: epath.Path, subset: str) -> list[epath.Path]:
    """The `.pts` files of a subset folder, sorted; an empty folder is an incomplete manual_dir."""
    pts_files = sorted((root / subset).glob("*.pts"))
    if not pts_files:
        raise common.DataError(f"{root / subset}: no .pts files (see MANUAL_DOWNLOAD_INSTRUCTIONS)")
    return pts_files


def subset_boxes(root: epath.Path, subset: str) -> tuple[epath.Path, dict] | None:
    """(box file, its boxes by stem) of a subset, or None where the release has no box file."""
    relative = box_file(subset)
    if relative is None:
        return None
    path = root / relative
    return path, parse_box_mat(path.read_bytes(), str(path))


def ibug_300w_examples(
    root: epath.Path, subsets: tuple[str, ...], skip_corrupt: bool, name: str
) -> Iterator[tuple[str, dict]]:
    """(key, example) for every `.pts` file of the given subsets."""
    items = []
    for subset in subsets:
        # An unreadable box file stops the build even with skip_corrupt: it holds a whole subset.
        boxes = subset_boxes(root, subset)
        items += [(subset, pts_path, boxes) for pts_path in subset_faces(root, subset)]

    def build(item):
        subset, pts_path, boxes = item
        landmarks = read_pts(pts_path, NUM_LANDMARKS)
        image_path = common.same_stem_image(pts_path)
        bbox = None
        if boxes is not None:
            mat, by_stem = boxes
            if pts_path.stem not in by_stem:
                raise common.DataError(f"{mat}: no box for {image_path.name} ({pts_path})")
            bbox = by_stem[pts_path.stem]
        image_id = f"{subset}/{pts_path.stem}"
        image = common.read_image(image_path)
        return image_id, common.make_example(image, landmarks, image_id, bbox=bbox, subset=subset)

    yield from common.generate(items, build, skip_corrupt, name)


SPLIT1 = {
    "train": ("lfpw/trainset", "lfpw/testset", "helen/trainset", "helen/testset", "afw", "ibug"),
    "test": ("300W/01_Indoor", "300W/02_Outdoor"),
}
SPLIT2 = {
    "train": ("lfpw/trainset", "helen/trainset", "afw"),
    "test_common": ("lfpw/testset", "helen/testset"),
    "test_challenge": ("ibug",),
}


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for 300W (iBUG), protocols split I and split II."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        Ibug300wConfig(
            name="split1",
            description="Split I: train 3,837 (lfpw, helen, afw, ibug), test 600 (300W).",
            splits=SPLIT1,
        ),
        Ibug300wConfig(
            name="split2",
            description="Split II: train 3,148, test_common 554, test_challenge 135 (ibug).",
            splits=SPLIT2,
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "split1"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    From https://ibug.doc.ic.ac.uk/resources/facial-point-annotations/ and
    https://ibug.doc.ic.ac.uk/resources/300-W/ download afw.zip, helen.zip, ibug.zip,
    lfpw.zip, bounding_boxes.zip and the 300W private test set 300w.zip.001-004
    (unzip part 1 with 7-Zip), and extract them all in manual_dir:
      manual_dir/afw/*.jpg, *.pts
      manual_dir/helen/trainset/, manual_dir/helen/testset/     *.jpg, *.pts
      manual_dir/ibug/*.jpg, *.pts
      manual_dir/lfpw/trainset/, manual_dir/lfpw/testset/       *.png, *.pts
      manual_dir/300W/01_Indoor/, manual_dir/300W/02_Outdoor/   *.png, *.pts
      manual_dir/Bounding Boxes/bounding_boxes_{afw,helen_trainset,helen_testset,
          lfpw_trainset,lfpw_testset,ibug}.mat
    split2 does not read 300W/.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=common.features(NUM_LANDMARKS, {"subset": tfds.features.Text()}),
            homepage="https://ibug.doc.ic.ac.uk/resources/300-W/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        subsets = [s for split in self.builder_config.splits.values() for s in split]
        mats = [box_file(s) for s in subsets if box_file(s) is not None]
        root = common.require(dl_manager.manual_dir, *subsets, *mats)
        return {split: self._generate_examples(root, split) for split in self.builder_config.splits}

    def _generate_examples(self, root: epath.Path, split: str):
        config = self.builder_config
        name = f"ibug_300w/{config.name}/{split}"
        yield from ibug_300w_examples(root, config.splits[split], config.skip_corrupt, name)
