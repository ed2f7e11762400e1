"""Any folder of images with same-stem `.pts` files beside them: the user's own landmarks.

Layout of manual_dir (searched recursively):
  - `<name>.jpg|.jpeg|.png|.bmp|.tif|.tiff|.webp` with `<name>.pts` in the same folder;
  - splits: the `train/` and `test/` folders (and `validation/` if present) when both
    `train/` and `test/` exist, otherwise everything is `train`;
  - optional boxes, (x_min, y_min, x_max, y_max) in 0-based pixels like the features:
    `boxes.json` {"<image path relative to manual_dir, or its stem>": [x0, y0, x1, y1]}
    and/or `boxes.csv` with the header `image,x_min,y_min,x_max,y_max`. Faces without a
    box get the tight box of their points.
`.pts` files are 1-based (iBUG format), so landmarks are the file's points minus 1.
An image without a `.pts`, a `.pts` without an image, a file outside the split folders and
a box naming no image are errors, or with skip_corrupt skipped and counted in the log.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from collections import defaultdict

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from sphm_jax.data.landmark_io import AnnotationError, read_pts
from tfds_builders import common

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
BOX_JSON = "boxes.json"
BOX_CSV = "boxes.csv"
BOX_CSV_HEADER = ["image", "x_min", "y_min", "x_max", "y_max"]
SPLIT_DIRS = ("train", "validation", "test")

_DESCRIPTION = """
Faces from a folder of your own: every image with a same-stem iBUG `.pts` file beside it
becomes an example, landmarks 0-based (the file's 1-based points minus 1), all visible.
`train/` and `test/` folders become splits; a `boxes.json` or `boxes.csv` gives face
boxes. `folder` is the image's folder relative to manual_dir.
"""


@dataclasses.dataclass
class PtsFolderConfig(common.LandmarkConfig):
    """num_landmarks: points per .pts file; None infers it from the first file (sorted)."""

    num_landmarks: int | None = 68


@dataclasses.dataclass(frozen=True)
class Face:
    """An image and its .pts (paths relative to manual_dir); with an error, the build raises it."""

    image: str | None = None
    pts: str | None = None
    error: str | None = None


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def is_pts(name: str) -> bool:
    return name.lower().endswith(".pts")


def stem(relative: str) -> str:
    """The path without its suffix: `train/a.jpg` -> `train/a`."""
    return relative.rsplit(".", 1)[0]


def list_files(root: epath.Path) -> list[str]:
    """Every image and .pts file under root, as sorted POSIX paths relative to root."""
    found = []
    for folder, _, files in root.walk():
        base = folder.relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        found += [prefix + f for f in files if (is_image(f) or is_pts(f)) and f[0] != "."]
    return sorted(found)


def pair_files(files: list[str]) -> list[Face]:
    """Faces from same-stem image and .pts pairs; a lone or ambiguous file is an error Face."""
    groups = defaultdict(lambda: ([], []))
    for relative in files:
        groups[stem(relative)][0 if is_image(relative) else 1].append(relative)
    faces = []
    for key in sorted(groups):
        images, pts = groups[key]
        if len(images) == 1 and len(pts) == 1:
            faces.append(Face(image=images[0], pts=pts[0]))
        elif not pts:
            faces += [Face(image=i, error=f"{i}: no .pts file beside it") for i in images]
        elif not images:
            faces += [Face(pts=p, error=f"{p}: no image beside it") for p in pts]
        else:
            error = f"{', '.join(images + pts)}: ambiguous, one image per .pts"
            faces.append(Face(image=images[0], pts=pts[0], error=error))
    return faces


def split_of(relative: str, splits: tuple[str, ...]) -> str | None:
    """The split folder a path is in, or None when it is outside them."""
    top = relative.split("/", 1)[0]
    return top if top in splits and "/" in relative else None


def assign_splits(faces: list[Face], splits: tuple[str, ...]) -> dict[str, list[Face]]:
    """Faces by split; with split folders, a face outside them is an error in `train`."""
    by_split = {split: [] for split in splits}
    for face in faces:
        path = face.image or face.pts
        split = split_of(path, splits)
        if len(splits) == 1:
            by_split[splits[0]].append(face)
        elif split is None and face.error is None:
            folders = "/, ".join(splits)
            by_split["train"].append(Face(error=f"{path}: outside the split folders {folders}/"))
        else:
            by_split[split or "train"].append(face)
    return by_split


def find_splits(root: epath.Path) -> tuple[str, ...]:
    """The split folders when train/ and test/ both exist, else ("train",) for everything."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        return tuple(s for s in SPLIT_DIRS if (root / s).is_dir())
    return ("train",)


def parse_box(values, where: str) -> np.ndarray:
    """float32 (x_min, y_min, x_max, y_max) from four numbers; anything else is a DataError."""
    try:
        box = np.asarray([float(v) for v in values], np.float64)
    except (TypeError, ValueError):
        box = np.zeros(0)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
        raise common.DataError(f"{where}: expected x_min, y_min, x_max, y_max, got {values!r}")
    return box.astype(np.float32)


def parse_boxes_json(text: str, name: str) -> dict[str, tuple[np.ndarray, str]]:
    """{image path or stem: (box, where it was given)} from the text of boxes.json."""
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as err:
        raise common.DataError(f"{name}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(entries, dict):
        raise common.DataError(f"{name}: expected an object {{image: [x0, y0, x1, y1]}}")
    return {key: (parse_box(value, f"{name}: {key!r}"), name) for key, value in entries.items()}


def parse_boxes_csv(text: str, name: str) -> dict[str, tuple[np.ndarray, str]]:
    """{image path or stem: (box, file:line)} from the text of boxes.csv."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip() for c in rows[0]] != BOX_CSV_HEADER:
        raise common.DataError(f"{name}:1: expected the header {','.join(BOX_CSV_HEADER)}")
    boxes = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        where = f"{name}:{lineno}"
        if len(row) != 5:
            raise common.DataError(f"{where}: expected 5 fields, got {len(row)}")
        if row[0].strip() in boxes:
            raise common.DataError(f"{where}: {row[0].strip()!r} has a box already")
        boxes[row[0].strip()] = (parse_box(row[1:], where), where)
    return boxes


def read_boxes(root: epath.Path) -> dict[str, tuple[np.ndarray, str]]:
    """The boxes of boxes.json and boxes.csv, merged; a key given twice is a DataError."""
    boxes = {}
    for name, parse in ((BOX_JSON, parse_boxes_json), (BOX_CSV, parse_boxes_csv)):
        path = root / name
        if not path.exists():
            continue
        for key, (box, where) in parse(path.read_text(), str(path)).items():
            if key in boxes:
                raise common.DataError(f"{where}: {key!r} has a box in {boxes[key][1]} too")
            boxes[key] = (box, where)
    return boxes


def match_boxes(boxes: dict, images: list[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """({image path: box}, errors): keys are image paths or stems naming exactly one image."""
    by_stem = defaultdict(list)
    for image in images:
        by_stem[image.rsplit("/", 1)[-1].rsplit(".", 1)[0]].append(image)
    matched, errors = {}, []
    for key, (box, where) in boxes.items():
        targets = [key] if key in images else by_stem.get(key, [])
        if len(targets) != 1:
            what = "names no image" if not targets else f"names {len(targets)} images"
            errors.append(f"{where}: box {key!r} {what}")
        elif targets[0] in matched:
            errors.append(f"{where}: {targets[0]} has two boxes")
        else:
            matched[targets[0]] = box
    return matched, errors


def infer_num_landmarks(root: epath.Path, faces: list[Face]) -> tuple[int, str]:
    """(K, file) from the first readable .pts file in path order."""
    for pts in sorted(face.pts for face in faces if face.pts and not face.error):
        try:
            return len(read_pts(root / pts)), pts
        except AnnotationError as err:
            logging.warning("pts_folder: cannot infer the number of points from %s", err)
    raise common.DataError(f"manual_dir {root}: no readable .pts file to count the points of")


def read_points(path: epath.Path, num_landmarks: int, reference: str | None) -> np.ndarray:
    """The 0-based points of a .pts file, which must have num_landmarks of them."""
    if reference is None:
        return read_pts(path, num_landmarks)
    points = read_pts(path)
    if len(points) != num_landmarks:
        raise AnnotationError(
            f"{path}: has {len(points)} points, but {reference} (the first .pts file) has "
            f"{num_landmarks}; all files must have the same number"
        )
    return points


def build_face(root: epath.Path, face: Face, boxes: dict, num_landmarks: int, reference):
    """(key, example) of one face; an error Face raises its DataError."""
    if face.error:
        raise common.DataError(f"{root}/{face.error}")
    landmarks = read_points(root / face.pts, num_landmarks, reference)
    image = common.read_image(root / face.image)
    folder = face.image.rsplit("/", 1)[0] if "/" in face.image else ""
    example = common.make_example(
        image, landmarks, face.image, bbox=boxes.get(face.image), folder=folder
    )
    return face.image, example


def plan(root: epath.Path, num_landmarks: int | None, skip_corrupt: bool) -> dict:
    """Everything the splits need: faces by split, boxes by image, K and the file K came from."""
    root = epath.Path(root)
    if not root.is_dir():
        raise common.DataError(f"manual_dir {root} does not exist or is not a folder")
    faces = pair_files(list_files(root))
    if not any(face.pts for face in faces):
        raise common.DataError(
            f"manual_dir {root} has no .pts file (see MANUAL_DOWNLOAD_INSTRUCTIONS)"
        )
    images = [face.image for face in faces if face.image and not face.error]
    boxes, errors = match_boxes(read_boxes(root), images)
    for error in errors:
        if not skip_corrupt:
            raise common.DataError(error)
        logging.warning("pts_folder: ignored a box: %s", error)
    reference = None
    if num_landmarks is None:
        num_landmarks, reference = infer_num_landmarks(root, faces)
    return {
        "splits": assign_splits(faces, find_splits(root)),
        "boxes": boxes,
        "num_landmarks": num_landmarks,
        "reference": reference,
    }


def split_examples(root: epath.Path, split: str, planned: dict, skip_corrupt: bool):
    """(key, example) for the faces of one split."""

    def build(face):
        k, reference = planned["num_landmarks"], planned["reference"]
        return build_face(root, face, planned["boxes"], k, reference)

    yield from common.generate(planned["splits"][split], build, skip_corrupt, f"pts_folder/{split}")


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for a folder of images and .pts files."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        PtsFolderConfig(name="landmarks68", description="68 points per face.", num_landmarks=68),
        PtsFolderConfig(name="landmarks98", description="98 points per face.", num_landmarks=98),
        PtsFolderConfig(
            name="auto",
            description="As many points as the first .pts file; all files must agree.",
            num_landmarks=None,
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "landmarks68"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Point manual_dir at your folder of faces. Every image (.jpg, .jpeg, .png, .bmp, .tif,
    .tiff, .webp) needs a same-stem iBUG .pts file beside it (any depth):
      manual_dir/train/person1/0001.jpg   manual_dir/train/person1/0001.pts
      manual_dir/test/0002.png            manual_dir/test/0002.pts
    With both train/ and test/ (and optionally validation/) those are the splits, else
    everything is `train`. Optional face boxes in 0-based pixels,
    manual_dir/boxes.json {"train/person1/0001.jpg": [x_min, y_min, x_max, y_max], ...}
    or manual_dir/boxes.csv with the header image,x_min,y_min,x_max,y_max
    (an image is named by its path relative to manual_dir, or by its stem).
    """

    def _info(self) -> tfds.core.DatasetInfo:
        metadata = {"folder": tfds.features.Text(doc="The image's folder in manual_dir.")}
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=common.features(self.builder_config.num_landmarks, metadata),
            homepage="https://ibug.doc.ic.ac.uk/resources/facial-point-annotations/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = epath.Path(dl_manager.manual_dir)
        config = self.builder_config
        planned = plan(root, config.num_landmarks, config.skip_corrupt)
        return {split: self._generate_examples(root, split, planned) for split in planned["splits"]}

    def _generate_examples(self, root: epath.Path, split: str, planned: dict):
        yield from split_examples(root, split, planned, self.builder_config.skip_corrupt)
