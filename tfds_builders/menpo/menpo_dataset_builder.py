"""Menpo 2D: the 68-point semi-frontal faces of the Menpo 2D challenge release.

Release facts (checked against LUVLi `splits_prep/organize_menpo_train.py` and README, and
the MenpoBenchmark repository of the challenge's organisers and its issues):
  - `menpo_challenge_trainset.zip` extracts to `trainset/`: one face per image
    (`.jpg` or `.png`) with a same-stem iBUG `.pts` file, 1-based like every iBUG `.pts`.
  - Semi-frontal faces have 68 points (the 300W mark-up), profile faces 39 (another
    mark-up); MenpoBenchmark lists 5,658 semi-frontal and 1,906 profile training faces.
    The paper trains and evaluates on the 68-point configuration, so the 39-point files
    are left out and counted in the build log.
  - The public test release holds images only (MenpoBenchmark issue #4), so there is a
    `test` split only when `testset/` has `.pts` files; LUVLi evaluates on the 68-point
    faces of the training set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from sphm_jax.data.landmark_io import AnnotationError, read_pts
from tfds_builders import common

NUM_LANDMARKS = 68  # semi-frontal mark-up
NUM_PROFILE = 39  # profile mark-up, left out
FOLDERS = {"train": "trainset", "test": "testset"}
HOMEPAGE = "https://ibug.doc.ic.ac.uk/resources/2nd-facial-landmark-tracking-competition-menpo-ben/"

_DESCRIPTION = """
Menpo 2D (Zafeiriou et al., CVPRW 2017; Deng et al., IJCV 2019): in-the-wild faces from
AFLW and FDDB annotated with the 68 points of 300W when semi-frontal and 39 points when in
profile. This builder keeps the 68-point (semi-frontal) faces, the "Menpo frontal" set of
the literature; profile faces are counted in the build log and left out. Landmarks are
0-based (x, y) pixels (the release's 1-based values minus 1); `bbox` is the tight box of
the landmarks.
"""


def load_faces(pts_files: list[epath.Path]) -> list[tuple[epath.Path, np.ndarray | Exception]]:
    """Each `.pts` file with its 0-based points, or the AnnotationError reading it raised."""
    faces = []
    for path in pts_files:
        try:
            faces.append((path, read_pts(path)))
        except AnnotationError as err:
            faces.append((path, err))  # raised again, or skipped, by the build step
    return faces


def is_profile(points) -> bool:
    return not isinstance(points, Exception) and len(points) == NUM_PROFILE


def menpo_examples(folder: epath.Path, skip_corrupt: bool, name: str) -> Iterator[tuple[str, dict]]:
    """(key, example) for every 68-point `.pts` file of a folder; 39-point ones are counted."""
    pts_files = sorted(folder.glob("*.pts"))
    if not pts_files:
        raise common.DataError(f"{folder}: no .pts files (see MANUAL_DOWNLOAD_INSTRUCTIONS)")
    faces = load_faces(pts_files)
    frontal = [face for face in faces if not is_profile(face[1])]
    logging.warning(
        "%s: %d of %d faces are 39-point profiles, left out (68-point only)",
        name,
        len(faces) - len(frontal),
        len(faces),
    )

    def build(face):
        pts_path, points = face
        if isinstance(points, Exception):
            raise points
        if len(points) != NUM_LANDMARKS:
            raise AnnotationError(
                f"{pts_path}: has {len(points)} points, expected {NUM_LANDMARKS} (semi-frontal) "
                f"or {NUM_PROFILE} (profile)"
            )
        image_id = f"{folder.name}/{pts_path.stem}"
        image = common.read_image(common.same_stem_image(pts_path))
        return image_id, common.make_example(image, points, image_id)

    yield from common.generate(frontal, build, skip_corrupt, name)


def has_annotations(folder: epath.Path) -> bool:
    return folder.exists() and any(folder.glob("*.pts"))


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for the 68-point faces of Menpo 2D."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        common.LandmarkConfig(
            name="frontal68",
            description="The semi-frontal faces (68 points); profiles (39 points) left out.",
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download menpo_challenge_trainset.zip, the Menpo 2D challenge training set, from
    https://ibug.doc.ic.ac.uk/resources/2nd-facial-landmark-tracking-competition-menpo-ben/
    and extract it in manual_dir:
      manual_dir/trainset/<name>.jpg or .png, <name>.pts
    Optional, if you have the test annotations: manual_dir/testset/ in the same layout
    gives a `test` split (the public test release has images only: without .pts files
    there is no test split).
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=common.features(NUM_LANDMARKS),
            homepage=HOMEPAGE,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = common.require(dl_manager.manual_dir, FOLDERS["train"])
        splits = {"train": self._generate_examples(root / FOLDERS["train"], "train")}
        test = root / FOLDERS["test"]
        if has_annotations(test):
            splits["test"] = self._generate_examples(test, "test")
        elif test.exists():
            logging.warning("menpo: %s has no .pts files, so there is no test split", test)
        return splits

    def _generate_examples(self, folder: epath.Path, split: str):
        config = self.builder_config
        yield from menpo_examples(folder, config.skip_corrupt, f"menpo/{split}")
