"""300W-LP: 300W faces re-rendered at large poses by 3D face profiling (train only).

Release facts (checked against TFDS's own `the300w_lp` builder, mmpose
`tools/dataset_converters/300wlp2coco.py`, LUVLi `splits_prep/organize_300W_LP.py` and the
3DDFA / 3DDFA_V2 issue trackers):
  - `300W-LP.zip` extracts to `300W_LP/` with `AFW/ HELEN/ IBUG/ LFPW/`, their mirrored
    copies `*_Flip/`, `landmarks/` and `Code/`. Each image `<SET>/<SET>_<id>_<view>.jpg`
    (450 x 450) has a `.mat` of 3DMM parameters beside it; its 68 landmarks are in
    `landmarks/<SET>/<SET>_<id>_<view>_pts.mat` (MATLAB v5), as `pts_2d` (68 x 2, the 2-D
    annotation, contour points on the visible face outline) and `pts_3d` (68 x 2, the
    projected 3-D landmarks, contour on the occluded jaw).
  - `landmarks/` has no `*_Flip` folder (no reader checked looks for one), and the `pt2d` of
    the per-image `.mat` is reported to be the same for every view of a face (3DDFA issue
    #192), so the `*_Flip` images have no usable landmarks: the builder reads the four
    unflipped sets, 61,225 faces (AFW 5,207, HELEN 37,676, IBUG 1,786, LFPW 16,556); the
    training pipeline flips at random anyway.
  - The set was made with MATLAB from the 1-based 300W annotations, so its coordinates are
    taken as 1-based, like `.pts`, and get 1 subtracted (TFDS's the300w_lp and mmpose keep
    the raw values; they do not use a pixel-centre convention).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import common

NUM_LANDMARKS = 68
TOP = "300W_LP"
SETS = ("AFW", "HELEN", "IBUG", "LFPW")

_DESCRIPTION = """
300W-LP (Zhu et al., CVPR 2016): 61,225 faces of 300W (AFW, HELEN, IBUG, LFPW) re-rendered
at yaw angles up to 90 degrees by 3D face profiling, 450 x 450 images, train split only.
Config `pts_2d` gives the 2-D annotation (contour on the visible outline), `pts_3d` the
projected 3-D landmarks. Landmarks are 0-based (x, y) pixels (the release's 1-based MATLAB
values minus 1); `bbox` is the tight box of the landmarks; `subset` is the source set.
The mirrored `*_Flip` folders are not read: the release has no landmarks for them.
"""


@dataclasses.dataclass
class Ibug300wLpConfig(common.LandmarkConfig):
    """variable: the landmark variable of the `_pts.mat` files, `pts_2d` or `pts_3d`."""

    variable: str = "pts_2d"


def parse_lp_mat(data: bytes, name: str, variable: str) -> np.ndarray:
    """0-based float32 [68, 2] from the bytes of a 300W-LP `_pts.mat` file."""
    mat = common.load_mat5(data, name)
    points = common.mat_numeric(mat, variable, name)
    if points.shape != (NUM_LANDMARKS, 2):
        raise common.DataError(
            f"{name}: {variable!r} has shape {points.shape}, expected ({NUM_LANDMARKS}, 2)"
        )
    return (points - 1.0).astype(np.float32)


def landmark_file(root: epath.Path, subset: str, image_path: epath.Path) -> epath.Path:
    """`300W_LP/landmarks/<SET>/<stem>_pts.mat`; a missing one is never skipped."""
    path = root / TOP / "landmarks" / subset / f"{image_path.stem}_pts.mat"
    if not path.exists():
        raise FileNotFoundError(f"{image_path}: its landmarks {path} are missing from manual_dir")
    return path


def set_images(root: epath.Path, subset: str) -> list[epath.Path]:
    """The images of one set, sorted; an empty set is an incomplete manual_dir."""
    images = sorted((root / TOP / subset).glob("*.jpg"))
    if not images:
        raise common.DataError(f"{root / TOP / subset}: no .jpg images")
    return images


def ibug_300w_lp_examples(
    root: epath.Path, variable: str, skip_corrupt: bool
) -> Iterator[tuple[str, dict]]:
    """(key, example) for every image of the four unflipped sets."""
    items = [(subset, path) for subset in SETS for path in set_images(root, subset)]

    def build(item):
        subset, image_path = item
        mat = landmark_file(root, subset, image_path)
        landmarks = parse_lp_mat(mat.read_bytes(), str(mat), variable)
        image_id = f"{subset}/{image_path.stem}"
        image = common.read_image(image_path)
        return image_id, common.make_example(image, landmarks, image_id, subset=subset)

    yield from common.generate(items, build, skip_corrupt, f"ibug_300w_lp/{variable}")


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for 300W-LP."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        Ibug300wLpConfig(
            name="pts_2d",
            description="The 2-D annotation (pts_2d): contour on the visible face outline.",
            variable="pts_2d",
        ),
        Ibug300wLpConfig(
            name="pts_3d",
            description="The projected 3-D landmarks (pts_3d): contour on the occluded jaw.",
            variable="pts_3d",
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "pts_2d"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download 300W-LP.zip from the 3DDFA page
    http://www.cbsr.ia.ac.cn/users/xiangyuzhu/projects/3DDFA/main.htm and extract it in
    manual_dir, so that it holds
      manual_dir/300W_LP/{AFW,HELEN,IBUG,LFPW}/*.jpg
      manual_dir/300W_LP/landmarks/{AFW,HELEN,IBUG,LFPW}/*_pts.mat
    (The *_Flip folders, the per-image .mat files and Code/ are not read.)
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=common.features(NUM_LANDMARKS, {"subset": tfds.features.Text()}),
            homepage="http://www.cbsr.ia.ac.cn/users/xiangyuzhu/projects/3DDFA/main.htm",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        folders = [f"{TOP}/{s}" for s in SETS] + [f"{TOP}/landmarks/{s}" for s in SETS]
        root = common.require(dl_manager.manual_dir, *folders)
        flipped = [s for s in SETS if (root / TOP / f"{s}_Flip").exists()]
        if flipped:
            logging.warning(
                "ibug_300w_lp: not reading %s: the release has no landmarks for them",
                ", ".join(f"{TOP}/{s}_Flip" for s in flipped),
            )
        return {"train": self._generate_examples(root)}

    def _generate_examples(self, root: epath.Path):
        config = self.builder_config
        yield from ibug_300w_lp_examples(root, config.variable, config.skip_corrupt)
