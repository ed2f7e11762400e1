"""WFLW: Wider Facial Landmarks in-the-wild, 98 points and six attribute flags per face.

Release facts (checked against the release README as quoted by several readers, and the
readers in PIPNet `lib/preprocess.py`, mmpose `tools/dataset_converters/wflw2coco.py` and
STAR `tools/split_wflw.py`):
  - `WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{train,test}.txt`
    hold 7,500 and 2,500 lines, one face each, 207 space-separated fields:
    x0 y0 ... x97 y97 (196), x_min y_min x_max y_max of the detection rectangle (4),
    pose expression illumination make-up occlusion blur (6 flags, 1 = large pose,
    exaggerated expression, extreme illumination, make-up, occlusion, blur),
    then the image path relative to `WFLW_images/` (`<event>/<file>.jpg`).
  - An image with several faces appears on several lines, so 10,000 faces come from fewer
    images; `image_id` is the image path plus `#<n>`, its n-th face in the list.
  - Coordinates: WFLW does not say where its origin is. Unlike the MATLAB-made iBUG `.pts`
    files (1-based, documented), every reader checked (PIPNet, mmpose, HRNet, STAR) uses
    the values as they are, so they are taken as 0-based pixel-centre coordinates and not
    shifted; a constant offset would cancel out within WFLW, not across datasets.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from sphm_jax.data.landmark_io import AnnotationError
from tfds_builders import common

NUM_LANDMARKS = 98
# The order of the release's flags; 1 is the hard case of each.
ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
NUM_FIELDS = 2 * NUM_LANDMARKS + 4 + len(ATTRIBUTES) + 1
IMAGE_DIR = "WFLW_images"
LIST_DIR = "WFLW_annotations/list_98pt_rect_attr_train_test"
LISTS = {split: f"{LIST_DIR}/list_98pt_rect_attr_{split}.txt" for split in ("train", "test")}

_DESCRIPTION = """
Wider Facial Landmarks in-the-wild (Wu et al., CVPR 2018): 10,000 faces from WIDER FACE,
7,500 for training and 2,500 for testing, each with 98 landmarks, a detection rectangle
(`bbox`) and six attribute flags (`attributes`: pose, expression, illumination, makeup,
occlusion, blur; True marks the hard case), from which the test subsets of the WFLW
protocol are taken. Landmarks are (x, y) pixels as the release gives them, read as
0-based; `visible` is 1 everywhere.
"""


@dataclasses.dataclass(frozen=True)
class Face:
    """One line of a WFLW list file."""

    landmarks: np.ndarray  # float32 [98, 2]
    bbox: np.ndarray  # float32 [4], x_min, y_min, x_max, y_max
    attributes: dict[str, bool]
    image: str  # relative to WFLW_images/


def parse_wflw_line(line: str, name: str, lineno: int) -> Face:
    """One face from a line of a WFLW list file; errors name `name:lineno`."""
    fields = line.split()
    if len(fields) != NUM_FIELDS:
        raise AnnotationError(
            f"{name}:{lineno}: {len(fields)} fields, expected {NUM_FIELDS} (196 coordinates, "
            f"4 box values, {len(ATTRIBUTES)} attribute flags, image path)"
        )
    numbers = np.empty(2 * NUM_LANDMARKS + 4, np.float64)
    for i, field in enumerate(fields[: len(numbers)]):
        try:
            numbers[i] = float(field)
        except ValueError:
            raise AnnotationError(
                f"{name}:{lineno}: field {i + 1} is {field!r}, not a number"
            ) from None
    flags = fields[len(numbers) : -1]
    if any(flag not in ("0", "1") for flag in flags):
        raise AnnotationError(f"{name}:{lineno}: attribute flags must be 0 or 1, got {flags}")
    return Face(
        landmarks=numbers[: 2 * NUM_LANDMARKS].reshape(NUM_LANDMARKS, 2).astype(np.float32),
        bbox=numbers[2 * NUM_LANDMARKS :].astype(np.float32),
        attributes={attr: flag == "1" for attr, flag in zip(ATTRIBUTES, flags)},
        image=fields[-1],
    )


def face_numbers(image_names: list[str]) -> list[int]:
    """For each list entry, how many earlier entries name the same image."""
    seen = collections.Counter()
    numbers = []
    for image in image_names:
        numbers.append(seen[image])
        seen[image] += 1
    return numbers


def read_face_image(path: epath.Path, where: str) -> np.ndarray:
    """The image a list line names; a missing one is an incomplete manual_dir, never skipped."""
    if not path.exists():
        raise FileNotFoundError(f"{where}: image {path} is missing from manual_dir")
    try:
        return common.read_image(path)
    except common.DataError as err:
        raise common.DataError(f"{where}: {err}") from None


def wflw_examples(root: epath.Path, split: str, skip_corrupt: bool) -> Iterator[tuple[str, dict]]:
    """(key, example) for every line of one split's list file."""
    list_path = root / LISTS[split]
    try:
        text = list_path.read_text()
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{list_path}: not a text file ({err.reason} at byte {err.start})")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line.strip()]
    faces = face_numbers([line.split()[-1] for _, line in lines])

    def build(item):
        (lineno, line), face = item
        where = f"{list_path}:{lineno}"
        parsed = parse_wflw_line(line, str(list_path), lineno)
        image = read_face_image(root / IMAGE_DIR / parsed.image, where)
        image_id = f"{parsed.image}#{face}"
        try:
            example = common.make_example(
                image,
                parsed.landmarks,
                image_id,
                bbox=parsed.bbox,
                attributes=parsed.attributes,
            )
        except common.DataError as err:
            raise common.DataError(f"{where}: {err}") from None
        return image_id, example

    yield from common.generate(zip(lines, faces), build, skip_corrupt, f"wflw/{split}")


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for WFLW."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        common.LandmarkConfig(
            name="default", description="All 98 points; 7,500 train and 2,500 test faces."
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download WFLW_images.tar.gz and WFLW_annotations.tar.gz from the WFLW page
    https://wywu.github.io/projects/LAB/WFLW.html and extract both in manual_dir:
      manual_dir/WFLW_images/<event>/<file>.jpg            (e.g. 0--Parade/...)
      manual_dir/WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_train.txt
      manual_dir/WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_test.txt
    (The other folders of WFLW_annotations are not read.)
    """

    def _info(self) -> tfds.core.DatasetInfo:
        attributes = tfds.features.FeaturesDict({attr: np.bool_ for attr in ATTRIBUTES})
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=common.features(NUM_LANDMARKS, {"attributes": attributes}),
            homepage="https://wywu.github.io/projects/LAB/WFLW.html",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = common.require(dl_manager.manual_dir, IMAGE_DIR, *LISTS.values())
        return {split: self._generate_examples(root, split) for split in LISTS}

    def _generate_examples(self, root: epath.Path, split: str):
        yield from wflw_examples(root, split, self.builder_config.skip_corrupt)
