"""300VW: 300 Videos in the Wild, 114 videos with 68 points on every frame.

Release facts (checked against mmpose's `tools/dataset_converters/300vw2coco.py` and the
video lists of other 300VW readers):
  - `300VW_Dataset_2015_12_14/<video id>/vid.avi` and `<video id>/annot/<frame>.pts`,
    one `.pts` (68 points, 1-based) per frame, named by the 1-based frame number with six
    digits (`000001.pts` is the first decoded frame).
  - 50 training videos and three test categories: A (scenario 1, well-lit, 31 videos),
    B (scenario 2, real-world human-computer interaction, 19) and C (scenario 3,
    arbitrary conditions, 14), the lists below.
  - No face boxes: `bbox` is the tight box of the 68 points (common.make_example).

Frames come from `<video id>/frames/<frame>.png|.jpg` (or mmpose's `imgs/`) when the user
has extracted them, else from decoding `vid.avi` with OpenCV (the `video` extra), which
needs the manual_dir on a local file system.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from sphm_jax.data import landmark_io
from tfds_builders import common

DATASET_DIR = "300VW_Dataset_2015_12_14"
# Video ids of each split (mmpose's 300vw2coco.py; the same lists in other 300VW readers).
TRAIN = (
    "001 002 003 004 007 009 010 011 013 015 016 017 018 019 020 022 025 027 028 029 031 033 "
    "034 035 037 039 041 043 044 046 047 048 049 053 057 059 112 113 115 119 120 123 138 143 "
    "144 160 204 205 223 225"
).split()
CATEGORY_A = (
    "114 124 125 126 150 158 401 402 505 506 507 508 509 510 511 514 515 518 519 520 521 522 "
    "524 525 537 538 540 541 546 547 548"
).split()
CATEGORY_B = "203 208 211 212 213 214 218 224 403 404 405 406 407 408 409 412 550 551 553".split()
CATEGORY_C = "410 411 516 517 526 528 529 530 531 533 557 558 559 562".split()
SPLIT_VIDEOS = {"train": TRAIN, "test_a": CATEGORY_A, "test_b": CATEGORY_B, "test_c": CATEGORY_C}
CATEGORIES = {"train": "train", "test_a": "A", "test_b": "B", "test_c": "C"}
FRAME_DIRS = ("frames", "imgs")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
NUM_POINTS = 68

_DESCRIPTION = """
300 Videos in the Wild (Shen et al., ICCV Workshops 2015): 114 videos, 218,594 frames, each
annotated with the 68 points of 300W. 50 videos train; the test videos form categories A,
B and C (C the hardest), one split each. Annotations were made semi-automatically, so some
frames have erroneous labels. `frame` is the 1-based frame number of the annotation file.
"""


@dataclasses.dataclass
class Ibug300vwConfig(common.LandmarkConfig):
    """stride: keep annotated frames 1, 1 + stride, 1 + 2 * stride, ... of every video."""

    stride: int = 1


def frame_number(path: epath.Path) -> int:
    """The 1-based frame number of an annotation file named like `000123.pts`."""
    if not path.stem.isdigit():
        raise common.DataError(f"{path}: not named by a frame number like 000001.pts")
    return int(path.stem)


def annotated_frames(annot_dir: epath.Path) -> tuple[dict[int, epath.Path], list]:
    """{frame number: .pts path} of a video, and an error for each misnamed .pts file."""
    frames, errors = {}, []
    for path in sorted(annot_dir.glob("*.pts")):
        try:
            frames[frame_number(path)] = path
        except common.DataError as err:
            errors.append(err)
    return frames, errors


def strided(numbers, stride: int) -> list[int]:
    """The frame numbers n with (n - 1) divisible by stride, sorted."""
    return sorted(n for n in numbers if (n - 1) % stride == 0)


def frame_dir(video_dir: epath.Path) -> epath.Path | None:
    """The folder of extracted frames of a video, if the user made one."""
    return next((video_dir / d for d in FRAME_DIRS if (video_dir / d).is_dir()), None)


def frame_file(frames: epath.Path, number: int) -> epath.Path:
    """The extracted image of one frame; a missing one is a DataError naming it."""
    for suffix in FRAME_SUFFIXES:
        path = frames / f"{number:06d}{suffix}"
        if path.exists():
            return path
    raise common.DataError(f"{frames}/{number:06d}.png (or .jpg): missing frame")


def folder_frames(frames: epath.Path, numbers):
    """(number, image or the DataError that reading it raised) for each wanted frame."""
    for number in numbers:
        try:
            yield number, common.read_image(frame_file(frames, number))
        except common.DataError as err:
            yield number, err


def import_cv2(path):
    """OpenCV, or a DataError saying how to get it or avoid it."""
    try:
        import cv2  # optional dependency, needed only to decode videos
    except ImportError:
        raise common.DataError(
            f"{path}: decoding videos needs OpenCV (pip install 'sphm_jax[video]'), "
            "or extract the frames to <video id>/frames/000001.png, ..."
        ) from None
    return cv2


def video_frames(path: epath.Path, numbers):
    """(number, RGB image or a DataError) for each wanted 1-based frame of a video file."""
    cv2 = import_cv2(path)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        error = common.DataError(f"{path}: not a readable video (it must be on a local disk)")
        yield from ((number, error) for number in numbers)
        return
    wanted, decoded = set(numbers), 0
    try:
        while decoded < max(numbers, default=0) and capture.grab():
            decoded += 1
            if decoded in wanted:
                ok, frame = capture.retrieve()
                if not ok:
                    yield decoded, common.DataError(f"{path}: frame {decoded} does not decode")
                else:
                    yield decoded, np.ascontiguousarray(frame[..., ::-1])  # BGR -> RGB
    finally:
        capture.release()
    for number in (n for n in numbers if n > decoded):
        yield number, common.DataError(f"{path}: ends after frame {decoded}, no frame {number}")


def video_source(video_dir: epath.Path):
    """The function giving a video's frames: its frames folder if any, else vid.avi."""
    frames = frame_dir(video_dir)
    if frames is not None:
        return lambda numbers: folder_frames(frames, numbers)
    return lambda numbers: video_frames(video_dir / "vid.avi", numbers)


def video_items(video_dir: epath.Path, stride: int):
    """(video id, frame number, .pts path, image or error) for the kept frames of a video."""
    annots, errors = annotated_frames(video_dir / "annot")
    if not annots and not errors:
        errors = [common.DataError(f"{video_dir / 'annot'}: no .pts files")]
    for error in errors:
        yield video_dir.name, 0, None, error
    numbers = strided(annots, stride)
    for number, image in video_source(video_dir)(numbers):
        yield video_dir.name, number, annots[number], image


def build_example(item, category: str) -> tuple[str, dict]:
    """(key, example) of one frame; a frame or annotation that failed raises its DataError."""
    video_id, number, pts_path, image = item
    if isinstance(image, Exception):
        raise image
    landmarks = landmark_io.read_pts(pts_path, NUM_POINTS)
    image_id = f"{video_id}/{number:06d}"
    example = common.make_example(
        image, landmarks, image_id, video_id=video_id, frame=number, category=category
    )
    return image_id, example


def split_examples(root: epath.Path, split: str, stride: int, skip_corrupt: bool):
    """(key, example) for every kept frame of every video of a split."""
    if stride < 1:
        raise ValueError(f"stride must be a positive number of frames, got {stride}")
    items = (
        item
        for video_id in SPLIT_VIDEOS[split]
        for item in video_items(root / DATASET_DIR / video_id, stride)
    )
    build = functools.partial(build_example, category=CATEGORIES[split])
    yield from common.generate(items, build, skip_corrupt, f"300vw/{split}")


def required_files(root: epath.Path, splits) -> list[str]:
    """The files and folders each video of the splits needs, relative to manual_dir."""
    needed = []
    for split in splits:
        for video_id in SPLIT_VIDEOS[split]:
            relative = f"{DATASET_DIR}/{video_id}"
            needed.append(f"{relative}/annot")
            if frame_dir(root / relative) is None:
                needed.append(f"{relative}/vid.avi")
    return needed


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for 300VW."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        Ibug300vwConfig(name="stride1", description="Every annotated frame.", stride=1),
        Ibug300vwConfig(
            name="stride5", description="Frames 1, 6, 11, ... of each video.", stride=5
        ),
        Ibug300vwConfig(
            name="stride25", description="Frames 1, 26, 51, ... (about 1 per second).", stride=25
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "stride1"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download 300VW_Dataset_2015_12_14.zip from https://ibug.doc.ic.ac.uk/resources/300-VW/
    and extract it in manual_dir, so that each of the 114 videos has
      manual_dir/300VW_Dataset_2015_12_14/<video id>/annot/000001.pts, ...
      manual_dir/300VW_Dataset_2015_12_14/<video id>/vid.avi
    Decoding vid.avi needs OpenCV (pip install 'sphm_jax[video]') and a local manual_dir.
    Instead, frames extracted beforehand are used when present, 1-based like the
    annotations: <video id>/frames/000001.png (or .jpg), e.g. with
      ffmpeg -i vid.avi -start_number 1 frames/%06d.png
    """

    def _info(self) -> tfds.core.DatasetInfo:
        metadata = {
            "video_id": tfds.features.Text(doc="300VW video folder name, e.g. '001'."),
            "frame": tfds.features.Scalar(dtype=np.int32, doc="1-based frame number."),
            "category": tfds.features.Text(doc="'train', or the test category 'A', 'B', 'C'."),
        }
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=common.features(NUM_POINTS, metadata),
            homepage="https://ibug.doc.ic.ac.uk/resources/300-VW/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        # The dataset folder first, so that an empty manual_dir gets a one-line error.
        root = common.require(dl_manager.manual_dir, DATASET_DIR)
        common.require(root, *required_files(root, SPLIT_VIDEOS))
        return {split: self._generate_examples(root, split) for split in SPLIT_VIDEOS}

    def _generate_examples(self, root: epath.Path, split: str):
        config = self.builder_config
        yield from split_examples(root, split, config.stride, config.skip_corrupt)
