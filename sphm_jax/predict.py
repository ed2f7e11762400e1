"""Landmarks for image files, batched and jitted: python -m sphm_jax.predict IMAGES... --checkpoint DIR.

Faces come from a box file (JSON or CSV), from the `.pts` file beside each
image (its tight box, as the training crops), or are the whole image. Every
face is cropped by the training pipeline's own rule (input_pipeline.preprocess),
run through the network in fixed-size batches spread over the local devices,
decoded sub-pixel and mapped back to original image pixels. One record per
face goes to JSON, JSON lines or CSV; an unreadable image or a bad box becomes
an error record, the rest still run, and the exit code is 1 if anything failed.

Python: `Predictor.load(workdir_or_checkpoint)(image, boxes)`.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import csv
import dataclasses
import heapq
import io
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import jax
import numpy as np
import tensorflow as tf
import tqdm
from etils import epath

from sphm_jax import (
    checkpoints,
    devices,
    geometry,
    heatmaps,
    image_io,
    inference,
    input_pipeline,
    landmark_io,
    layouts,
    plots,
    storage,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
BOX_FIELDS = ("x_min", "y_min", "x_max", "y_max")
_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)


class InputError(ValueError):
    """A bad input file, box or setting; the message names it."""


# --- boxes -------------------------------------------------------------------------------------


def whole_image_box(height: int, width: int) -> np.ndarray:
    """The box whose edges are the image's: with crop_scale 1 the crop is the (padded) image."""
    return np.array([-0.5, -0.5, width - 0.5, height - 0.5], np.float32)


def check_box(box, height: int, width: int, where: str) -> np.ndarray:
    """The box as float32[4], or an InputError if it is degenerate or misses the image."""
    box = np.asarray(box, np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise InputError(f"{where}: a box needs 4 finite numbers (x_min, y_min, x_max, y_max)")
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        raise InputError(
            f"{where}: degenerate box {box.tolist()} (x_max <= x_min or y_max <= y_min)"
        )
    if x1 < -0.5 or y1 < -0.5 or x0 > width - 0.5 or y0 > height - 0.5:
        raise InputError(f"{where}: box {box.tolist()} lies outside the {width}x{height} image")
    return box.astype(np.float32)


def _box_values(values, where: str) -> list[float]:
    try:
        box = [float(v) for v in values]
    except (TypeError, ValueError):
        raise InputError(f"{where}: box values must be numbers, got {values!r}") from None
    if len(box) != 4:
        raise InputError(
            f"{where}: a box has 4 numbers (x_min, y_min, x_max, y_max), got {values!r}"
        )
    return box


def _json_boxes(text: str, name: str) -> dict[str, list[list[float]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{name}: not valid JSON ({err})") from None
    boxes: dict[str, list[list[float]]] = {}
    if isinstance(data, dict):  # {"image": box or [box, ...]}
        for image, value in data.items():
            many = isinstance(value, list) and value and isinstance(value[0], (list, tuple))
            for i, box in enumerate(value if many else [value]):
                boxes.setdefault(image, []).append(_box_values(box, f"{name}: {image!r}[{i}]"))
    elif isinstance(data, list):  # [{"image": ..., "box": [...]}, ...]
        for i, record in enumerate(data):
            if not (isinstance(record, dict) and "image" in record and "box" in record):
                raise InputError(f"{name}: record {i} needs the keys 'image' and 'box'")
            box = _box_values(record["box"], f"{name}: record {i}")
            boxes.setdefault(str(record["image"]), []).append(box)
    else:
        raise InputError(
            f"{name}: expected an object or a list of records, got {type(data).__name__}"
        )
    return boxes


def _csv_boxes(text: str, name: str) -> dict[str, list[list[float]]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [f for f in ("image", *BOX_FIELDS) if f not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{name}: the header lacks the column(s) {', '.join(missing)}")
    boxes: dict[str, list[list[float]]] = {}
    for row in reader:
        where = f"{name}: line {reader.line_num}"
        box = _box_values([row[f] for f in BOX_FIELDS], where)
        boxes.setdefault(row["image"], []).append(box)
    return boxes


def read_boxes(path) -> dict[str, list[list[float]]]:
    """image name -> its face boxes, from a .json or .csv box file (formats in the README)."""
    path = epath.Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the box file ({err})") from None
    if path.suffix.lower() == ".json":
        return _json_boxes(text, str(path))
    if path.suffix.lower() == ".csv":
        return _csv_boxes(text, str(path))
    raise InputError(f"{path}: a box file is .json or .csv")


def pts_box(image_path) -> np.ndarray:
    """The tight box of the finite points of the .pts file beside an image."""
    pts = epath.Path(image_path).with_suffix(".pts")
    if not pts.exists():
        raise InputError(f"{image_path}: no {pts.name} beside it for --boxes=pts")
    points = landmark_io.read_pts(pts)
    finite = points[np.all(np.isfinite(points), axis=-1)]
    if len(finite) == 0:
        raise InputError(f"{pts}: no finite point to take a box from")
    return np.concatenate([finite.min(0), finite.max(0)]).astype(np.float32)


# --- inputs ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageFile:
    path: epath.Path
    name: str  # as matched against box files and written to the output: relative to its input


def _image_files(folder: epath.Path) -> list[epath.Path]:
    """Image files under a folder, depth first, sorted (epath has no recursive glob on GCS)."""
    found = []
    for child in sorted(folder.iterdir()):
        if child.is_dir():
            found += _image_files(child)
        elif child.suffix.lower() in IMAGE_SUFFIXES:
            found.append(child)
    return found


def find_images(inputs: Sequence[str]) -> list[ImageFile]:
    """Image files named or found (recursively, by suffix) in folders, in a stable order."""
    found = []
    for item in inputs:
        path = epath.Path(item)
        if path.is_dir():
            files = _image_files(path)
            found += [ImageFile(p, os.path.relpath(p, path)) for p in files]
        elif path.exists():
            found.append(ImageFile(path, str(item)))
        else:
            raise InputError(f"{item}: no such file or folder")
    return found


def raw_boxes(image: ImageFile, shape, source) -> list:
    """The face boxes of one image, unchecked: from a box table, its .pts file, or the whole image."""
    if source is None:
        return [whole_image_box(*shape[:2])]
    if source == "pts":
        return [pts_box(image.path)]
    for key in (image.name, str(image.path), image.path.name):
        if key in source:
            return source[key]
    raise InputError(f"{image.name}: not in the box file")


# --- the predictor -----------------------------------------------------------------------------


@dataclasses.dataclass
class Predictor:
    """Sub-pixel landmarks of faces in images; batched, jitted, spread over the local devices.

    crop_scale: crop side / longer box side (the training pipeline's rule);
    use 1.0 with whole-image boxes to feed pre-cropped faces unchanged.
    """

    model: Any
    variables: Any
    image_size: int = 256
    crop_scale: float = geometry.CROP_SCALE
    decoder: str = "local_softargmax"
    window: int = 5
    temperature: float = 10.0
    flip: bool = False
    batch_size: int = 32

    def __post_init__(self):
        if self.decoder not in heatmaps.METHODS:
            raise InputError(f"decoder {self.decoder!r}: choose one of {heatmaps.METHODS}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be positive, got {self.batch_size}")
        multiple = 2 ** (self.model.depth + 2)
        if self.image_size % multiple:
            raise InputError(f"image_size {self.image_size} is not a multiple of {multiple}")
        permutation = None
        if self.flip:
            permutation = layouts.get_layout(self.model.num_landmarks).flip_permutation
        dp = devices.data_parallel(jax.local_devices())
        # Whole batches per device: the last, short batch is padded, so one compile serves all.
        self._padded = math.ceil(self.batch_size / dp.mesh.size) * dp.mesh.size
        self._fn = inference.landmark_fn(
            self.model.apply,
            self.variables,
            dp,
            decoders=(self.decoder,),
            window=self.window,
            temperature=self.temperature,
            flip_permutation=permutation,
        )

    @classmethod
    def load(cls, path, step=None, **settings) -> "Predictor":
        """From a training workdir (its config.json's crop and decoder) or a checkpoint directory."""
        model, variables, found = checkpoints.load_checkpoint(path, step, **settings)
        return cls(model, variables, **found)

    @property
    def num_landmarks(self) -> int:
        return self.model.num_landmarks

    def predict_crops(self, images, crops) -> tuple[np.ndarray, np.ndarray]:
        """(points [N, K, 2] in original pixels, peak scores [N, K]) of uint8 crops [N, S, S, 3]."""
        images, crops = np.asarray(images, np.uint8), np.asarray(crops, np.float32)
        points, scores = [], []
        for start in range(0, len(images), self._padded):
            chunk = slice(start, start + self._padded)
            n = len(images[chunk])
            fill = self._padded - n  # padding: black crops with identity matrices
            out = self._fn(
                {
                    "image": np.pad(images[chunk], [(0, fill)] + [(0, 0)] * 3),
                    "crop": np.concatenate([crops[chunk], np.tile(_IDENTITY, (fill, 1, 1))]),
                }
            )
            p, s = out[self.decoder], out["scores"]
            points.append(np.asarray(p)[:n])
            scores.append(np.asarray(s)[:n])
        k = self.num_landmarks
        if not points:
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        return np.concatenate(points), np.concatenate(scores)

    def crop(self, image, box) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 crop [S, S, 3], float32 matrix original -> crop) by the training pipeline's rule."""
        example = {"image": image, "bbox": box, "landmarks": np.zeros((0, 2), np.float32)}
        out = input_pipeline.preprocess(example, self.image_size, self.crop_scale)
        return out["image"].numpy(), out["crop"].numpy()

    def __call__(self, image, boxes=None) -> tuple[np.ndarray, np.ndarray]:
        """(points [F, K, 2], scores [F, K]) of the faces `boxes` [F, 4] (default: the whole image)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise InputError(f"image must be uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}")
        if boxes is None:
            boxes = [whole_image_box(*image.shape[:2])]
        shape = image.shape
        crops = [
            self.crop(image, check_box(b, *shape[:2], f"box {i}")) for i, b in enumerate(boxes)
        ]
        return self.predict_crops([c[0] for c in crops], [c[1] for c in crops])

    def stream(self, faces: Iterable[tuple[Any, np.ndarray, np.ndarray]]) -> Iterator[tuple]:
        """(key, points [K, 2], scores [K]) per (key, image, box), cropped in tf.data threads.

        Memory stays bounded: images are pulled from `faces` as batches are needed.
        """
        keys = collections.deque()  # filled by the generator, emptied in the same order below

        def examples():
            for key, image, box in faces:
                keys.append(key)
                yield {"image": image, "bbox": box, "landmarks": np.zeros((0, 2), np.float32)}

        signature = {
            "image": tf.TensorSpec([None, None, 3], tf.uint8),
            "bbox": tf.TensorSpec([4], tf.float32),
            "landmarks": tf.TensorSpec([0, 2], tf.float32),
        }
        ds = tf.data.Dataset.from_generator(examples, output_signature=signature)
        ds = ds.map(
            lambda ex: input_pipeline.preprocess(ex, self.image_size, self.crop_scale),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        for batch in ds.batch(self._padded).prefetch(1).as_numpy_iterator():
            points, scores = self.predict_crops(batch["image"], batch["crop"])
            for p, s in zip(points, scores):
                yield keys.popleft(), p, s


# --- the command line: everything below has side effects ---------------------------------------


def read_faces(images: Sequence[ImageFile], source, on_error, workers: int = 4) -> Iterator:
    """((image index, face index, ImageFile, box), image, box) per valid face, images read ahead.

    Unreadable images and bad boxes go to on_error(image index, face index, ImageFile, box,
    message) and are skipped; at most 2 * workers images are held at once.
    """
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        reads = (
            (i, img, pool.submit(image_io.read_image, img.path)) for i, img in enumerate(images)
        )  # lazy: an image is submitted only when the window below pulls it
        pending = collections.deque(itertools.islice(reads, 2 * workers))
        while pending:
            i, img, future = pending.popleft()
            pending.extend(itertools.islice(reads, 1))
            try:
                image = future.result()
                boxes = raw_boxes(img, image.shape, source)
            except (image_io.ImageError, InputError, landmark_io.AnnotationError) as err:
                on_error(i, None, img, None, str(err))
                continue
            for f, box in enumerate(boxes):
                try:
                    box = check_box(box, *image.shape[:2], f"{img.name}: box {f}")
                except InputError as err:
                    on_error(i, f, img, box, str(err))
                    continue
                yield (i, f, img, box), image, box


class Records:
    """One record per face (or error) to .json (an array), .jsonl or .csv, written as it comes."""

    def __init__(self, path: str | None, num_landmarks: int):
        self.path, self.k = path, num_landmarks
        self.kind = "jsonl" if path is None else storage.path(path).suffix.lower().lstrip(".")
        if self.kind not in ("json", "jsonl", "csv"):
            raise InputError(f"--output {path}: write .json, .jsonl or .csv")
        self.opened = contextlib.ExitStack()  # a remote file is a context manager only
        self.file = (
            sys.stdout if path is None else self.opened.enter_context(storage.path(path).open("w"))
        )
        self.count = 0
        if self.kind == "json":
            self.file.write("[\n")
        if self.kind == "csv":
            self.csv = csv.writer(self.file)
            coords = [f"{a}_{i}" for i in range(self.k) for a in "xy"]
            scores = [f"score_{i}" for i in range(self.k)]
            self.csv.writerow(["image", "face", *BOX_FIELDS, "error", *coords, *scores])

    def write(self, record: dict) -> None:
        if self.kind == "csv":
            box = record["box"] or [""] * 4
            points = np.ravel(record.get("landmarks") or []).tolist()
            scores = record.get("scores") or []
            row = [record["image"], record["face"], *box, record["error"] or ""]
            self.csv.writerow(row + points + scores)
        else:
            line = json.dumps(record)
            sep = ",\n" if self.kind == "json" and self.count else ""
            self.file.write(sep + line + ("" if self.kind == "json" else "\n"))
        self.count += 1

    def close(self) -> None:
        if self.kind == "json":
            self.file.write("\n]\n")
        self.opened.close()


def face_record(img: ImageFile, face, box, points=None, scores=None, error=None) -> dict:
    as_list = lambda a: None if a is None else np.round(np.asarray(a, np.float64), 4).tolist()
    return {
        "image": img.name,
        "face": face,
        "box": as_list(box),
        "landmarks": as_list(points),
        "scores": as_list(scores),
        "error": error,
    }


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m sphm_jax.predict",
        description="Sub-pixel facial landmarks for image files (batched, jitted).",
    )
    parser.add_argument(
        "inputs", nargs="+", help="image files and/or folders (searched recursively)"
    )
    parser.add_argument(
        "--checkpoint", required=True, help="a training workdir or a checkpoint directory"
    )
    parser.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument(
        "--boxes",
        help="face boxes: a .json/.csv file, or 'pts' for the .pts file beside each image "
        "(default: the whole image is the face)",
    )
    parser.add_argument("--output", help=".json, .jsonl or .csv (default: JSON lines on stdout)")
    parser.add_argument("--overlays", help="folder for PNGs with the landmarks drawn")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--decoder", choices=heatmaps.METHODS, help="default: the workdir's")
    parser.add_argument("--window", type=int)
    parser.add_argument("--temperature", type=float)
    parser.add_argument(
        "--image_size", type=int, help="network input side (default: the workdir's or 256)"
    )
    parser.add_argument(
        "--crop_scale",
        type=float,
        help="crop side / longer box side (default: the workdir's; 1.0 for whole-image faces)",
    )
    parser.add_argument("--flip", action="store_true", help="average with the mirrored crop")
    parser.add_argument("--workers", type=int, default=4, help="image reading threads")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse_args(argv)
    tf.config.set_visible_devices([], "GPU")  # tf.data crops on the host; the devices are JAX's
    started = time.time()
    try:
        images = find_images(args.inputs)
        source = args.boxes
        if source is not None and source != "pts":
            source = read_boxes(source)
        crop_scale = args.crop_scale
        if crop_scale is None and args.boxes is None:
            crop_scale = 1.0  # whole images are taken as already cropped faces
        predictor = Predictor.load(
            args.checkpoint,
            args.step,
            batch_size=args.batch_size,
            decoder=args.decoder,
            window=args.window,
            temperature=args.temperature,
            image_size=args.image_size,
            crop_scale=crop_scale,
            flip=args.flip,
        )
        records = Records(args.output, predictor.num_landmarks)
    except (InputError, FileNotFoundError, ValueError, landmark_io.AnnotationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    errors = []  # heap of (image index, face index, record): written in input order
    overlay = []  # the faces of the image being drawn

    failed = []

    def on_error(i, f, img, box, message):
        failed.append(img.name)
        heapq.heappush(errors, (i, -1 if f is None else f, face_record(img, f, box, error=message)))

    def flush_errors(before):
        while errors and errors[0][:2] < before:
            records.write(heapq.heappop(errors)[2])

    def draw(pending):
        if args.overlays and pending:
            img = pending[0][0]
            out = storage.path(args.overlays) / (os.path.splitext(img.name)[0] + ".png")
            out.parent.mkdir(parents=True, exist_ok=True)
            boxes = np.stack([p[1] for p in pending])
            points = np.stack([p[2] for p in pending])
            plots.save_png(plots.draw_landmarks(image_io.read_image(img.path), boxes, points), out)

    faces = read_faces(images, source, on_error, args.workers)
    progress = tqdm.tqdm(total=len(images), unit="image", file=sys.stderr, disable=None)
    predicted, last_image = 0, -1
    for (i, f, img, box), points, scores in predictor.stream(faces):
        flush_errors((i, f))
        if i != last_image:
            draw(overlay)
            overlay = []
            progress.update(i - last_image)
            last_image = i
        records.write(face_record(img, f, box, points, scores))
        overlay.append((img, box, points))
        predicted += 1
    draw(overlay)
    progress.update(len(images) - 1 - last_image)
    progress.close()
    failed_names = sorted(set(failed))
    flush_errors((math.inf, math.inf))
    records.close()
    seconds = time.time() - started
    print(
        f"{len(images)} images, {predicted} faces predicted, {len(failed)} failed "
        f"({seconds:.1f} s, {predicted / max(seconds, 1e-9):.1f} faces/s)",
        file=sys.stderr,
    )
    for name in failed_names[:20]:
        print(f"  failed: {name}", file=sys.stderr)
    if len(failed_names) > 20:
        print(f"  ... and {len(failed_names) - 20} more (see the error records)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
