"""Landmarks for image files, batched and jitted: python -m sphm_jax.predict IMAGES... --checkpoint DIR.

Faces come from a box file (JSON or CSV), from the `.pts` file beside each
image (its tight box, as the training crops), or are the whole image. Every
face is cropped by the training pipeline's own rule (input_pipeline.preprocess),
run through the network in fixed-size batches spread over the local devices,
decoded sub-pixel and mapped back to original image pixels. One record per
face goes to JSON, JSON lines or CSV; an unreadable image or a bad box becomes
an error record, the rest still run, and the exit code is 1 if anything failed.

Python: `sphm_jax.predictor.Predictor.load(workdir_or_checkpoint)(image, boxes)`.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import csv
import dataclasses
import heapq
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf
import tqdm
from etils import epath

from sphm_jax import (
    heatmaps,
    image_io,
    landmark_io,
    plots,
    storage,
)
from sphm_jax.boxes import BOX_FIELDS, InputError, check_box, pts_box, read_boxes, whole_image_box
from sphm_jax.predictor import Predictor

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


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


def _setup(args) -> tuple:
    """(images, box source, predictor, records) of the command line; InputError if bad."""
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
    return images, source, predictor, Records(args.output, predictor.num_landmarks)


class _Writer:
    """Records in input order (an error waits in a heap for the faces before it), and overlays."""

    def __init__(self, records: Records, overlays: str | None):
        self.records, self.overlays = records, overlays
        self.errors = []  # heap of (image index, face index, record)
        self.failed = []  # image names
        self.overlay = []  # the faces of the image being drawn

    def error(self, i, f, img, box, message) -> None:
        self.failed.append(img.name)
        record = face_record(img, f, box, error=message)
        heapq.heappush(self.errors, (i, -1 if f is None else f, record))

    def flush_errors(self, before) -> None:
        while self.errors and self.errors[0][:2] < before:
            self.records.write(heapq.heappop(self.errors)[2])

    def face(self, i, f, img, box, points, scores) -> None:
        self.flush_errors((i, f))
        self.records.write(face_record(img, f, box, points, scores))
        self.overlay.append((img, box, points))

    def draw(self) -> None:
        """The overlay of the image whose faces are done."""
        pending, self.overlay = self.overlay, []
        if self.overlays and pending:
            img = pending[0][0]
            out = storage.path(self.overlays) / (os.path.splitext(img.name)[0] + ".png")
            out.parent.mkdir(parents=True, exist_ok=True)
            boxes = np.stack([p[1] for p in pending])
            points = np.stack([p[2] for p in pending])
            plots.save_png(plots.draw_landmarks(image_io.read_image(img.path), boxes, points), out)

    def close(self) -> None:
        self.flush_errors((math.inf, math.inf))
        self.records.close()


def _predict_all(args, images, source, predictor: Predictor, writer: _Writer) -> int:
    """Streams every face through the predictor; the number of faces predicted."""
    faces = read_faces(images, source, writer.error, args.workers)
    progress = tqdm.tqdm(total=len(images), unit="image", file=sys.stderr, disable=None)
    predicted, last_image = 0, -1
    for (i, f, img, box), points, scores in predictor.stream(faces):
        if i != last_image:
            writer.draw()
            progress.update(i - last_image)
            last_image = i
        writer.face(i, f, img, box, points, scores)
        predicted += 1
    writer.draw()
    progress.update(len(images) - 1 - last_image)
    progress.close()
    return predicted


def main(argv=None) -> int:
    args = _parse_args(argv)
    tf.config.set_visible_devices([], "GPU")  # tf.data crops on the host; the devices are JAX's
    started = time.time()
    try:
        images, source, predictor, records = _setup(args)
    except (InputError, FileNotFoundError, ValueError, landmark_io.AnnotationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    writer = _Writer(records, args.overlays)
    predicted = _predict_all(args, images, source, predictor, writer)
    writer.close()
    failed, failed_names = writer.failed, sorted(set(writer.failed))
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
