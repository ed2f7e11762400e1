"""Landmarks for photos and videos, batched and jitted: python -m sphm_jax.predict INPUTS... --checkpoint DIR.

Faces come from a face detector (`--detector`, default mtcnn, its box calibrated to the
training crop by the workdir's detector_calibration.json), a box file (JSON or CSV), the
`.pts` file beside each image (its tight box, as the training crops), or are the whole image
(`--detector none`). Every face is cropped by the training pipeline's own rule
(input_pipeline.preprocess), run through the network in fixed-size batches spread over the
local devices, decoded sub-pixel and mapped back to original image pixels. A video (or, with
`--video`, a folder of frames) is followed frame by frame (sphm_jax.toolkit.video.track). One record per
face goes to JSON, JSON lines or CSV; an unreadable image or a bad box becomes an error record,
the rest still run, and the exit code is 1 if anything failed.

Python: `sphm_jax.toolkit.predictor.Predictor.load(workdir_or_checkpoint)(image, boxes)`.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import itertools
import os
import sys
import time
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf
import tqdm
from etils import epath

from sphm_jax import heatmaps
from sphm_jax.data import image_io, landmark_io
from sphm_jax.data.boxes import (  # noqa: F401 (BOX_FIELDS: the CSV columns, for callers)
    BOX_FIELDS,
    InputError,
    check_box,
    pts_box,
    read_boxes,
    whole_image_box,
)
from sphm_jax.toolkit import detectors, prediction_files, smoothing, video
from sphm_jax.toolkit.prediction_files import Records, Writer, face_record
from sphm_jax.toolkit.predictor import RELIABLE_SCORE, Predictor
from sphm_jax.training import xla_cpu

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


def split_inputs(inputs: Sequence[str], frame_folders: bool) -> tuple[list[str], list[str]]:
    """(photo inputs, clip inputs): video files are clips; so are folders with --video."""
    photos, clips = [], []
    for item in inputs:
        path = epath.Path(item)
        is_clip = path.suffix.lower() in video.VIDEO_SUFFIXES or (frame_folders and path.is_dir())
        (clips if is_clip else photos).append(item)
    if frame_folders and photos:
        raise InputError(f"--video takes video files and folders of frames, not {photos[0]}")
    return photos, clips


def raw_boxes(image: ImageFile, pixels: np.ndarray, source) -> list:
    """The face boxes of one image, unchecked: from a box table, its .pts file, a detector
    (a callable: pixels -> boxes), or the whole image."""
    if source is None:
        return [whole_image_box(*pixels.shape[:2])]
    if source == "pts":
        return [pts_box(image.path)]
    if callable(source):
        return list(source(pixels))
    for key in (image.name, str(image.path), image.path.name):
        if key in source:
            return source[key]
    raise InputError(f"{image.name}: not in the box file")


# --- the command line: everything below has side effects ---------------------------------------


def read_faces(images: Sequence[ImageFile], source, on_error, workers: int = 4) -> Iterator:
    """((image index, face index, ImageFile, box), image, box) per valid face, images read ahead.

    Unreadable images and bad boxes go to on_error(image index, face index, ImageFile, box,
    message) and are skipped, as do images where a detector finds no face (failed=False);
    at most 2 * workers images are held at once. Detection runs in the reading threads.
    """

    def read(img):
        image = image_io.read_image(img.path)
        return image, raw_boxes(img, image, source)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        reads = (
            (i, img, pool.submit(read, img)) for i, img in enumerate(images)
        )  # lazy: an image is submitted only when the window below pulls it
        pending = collections.deque(itertools.islice(reads, 2 * workers))
        while pending:
            i, img, future = pending.popleft()
            pending.extend(itertools.islice(reads, 1))
            try:
                image, boxes = future.result()
            except (image_io.ImageError, InputError, landmark_io.AnnotationError) as err:
                on_error(i, None, img, None, str(err))
                continue
            if not boxes:
                on_error(i, None, img, None, "no face detected", failed=False)
            for f, box in enumerate(boxes):
                try:
                    box = check_box(box, *image.shape[:2], f"{img.name}: box {f}")
                except InputError as err:
                    on_error(i, f, img, box, str(err))
                    continue
                yield (i, f, img, box), image, box


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m sphm_jax.predict",
        description="Sub-pixel facial landmarks for photos and videos (batched, jitted).",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        help="image files and/or folders (searched recursively), video files "
        f"({' '.join(video.VIDEO_SUFFIXES)})",
    )
    parser.add_argument(
        "--checkpoint", required=True, help="a training workdir or a checkpoint directory"
    )
    parser.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument(
        "--boxes",
        help="face boxes: a .json/.csv file, or 'pts' for the .pts file beside each image "
        "(default: found by --detector)",
    )
    parser.add_argument(
        "--detector",
        choices=(*detectors.DETECTORS, "none"),
        help=f"face detector when --boxes is not given (default: {detectors.DEFAULT_DETECTOR}; "
        "none: the whole image is the face)",
    )
    parser.add_argument("--output", help=".json, .jsonl or .csv (default: JSON lines on stdout)")
    parser.add_argument(
        "--overlays", help="folder for PNGs with the landmarks drawn; for videos also an .mp4"
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        help="faces per network call (default 32; 1 for videos, which run frame by frame)",
    )
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
    parser.add_argument(
        "--min_score",
        type=float,
        default=RELIABLE_SCORE,
        help="points whose heatmap peak is below this are listed as unreliable",
    )
    parser.add_argument("--workers", type=int, default=4, help="image reading threads")
    _add_video_args(parser.add_argument_group("videos"))
    return parser.parse_args(argv)


def _add_video_args(clips) -> None:
    clips.add_argument("--video", action="store_true", help="each folder is the frames of a clip")
    clips.add_argument("--fps", type=float, default=25.0, help="frame rate of frame folders")
    clips.add_argument("--smooth", action="store_true", help="One-Euro smoothing of the points")
    clips.add_argument("--min_cutoff", type=float, default=smoothing.OneEuroParams.min_cutoff)
    clips.add_argument("--beta", type=float, default=smoothing.OneEuroParams.beta)
    clips.add_argument(
        "--lost_score",
        type=float,
        default=video.LOST_SCORE,
        help="re-detect when a face's mean peak score falls below this",
    )
    clips.add_argument(
        "--redetect_every", type=int, default=0, help="also re-detect every N frames (0: never)"
    )


def box_source(args):
    """The box source: a box table, 'pts', a detector with its calibration, or None (whole)."""
    if args.boxes is not None:
        return args.boxes if args.boxes == "pts" else read_boxes(args.boxes)
    name = args.detector or detectors.DEFAULT_DETECTOR
    if name == "none":
        return None
    try:
        find = detectors.face_finder(name, args.checkpoint)
    except detectors.MissingDetector as err:
        raise InputError(f"{err}; or pass --boxes, or --detector none for whole images") from None
    if detectors.read_calibration(args.checkpoint, name) is None:
        print(
            f"warning: no {name} calibration in {args.checkpoint}: its boxes are used as they "
            f"are (python -m sphm_jax.detect calibrate --checkpoint WORKDIR --detector {name})",
            file=sys.stderr,
        )
    return find


def _check_clips(args, clips, images) -> None:
    for clip in clips:
        if not epath.Path(clip).exists():
            raise InputError(f"{clip}: no such file or folder")
    if clips and (args.boxes is not None or args.detector == "none"):
        raise InputError("videos need a face detector (--detector), not --boxes or none")
    one_file = args.overlays and args.overlays.lower().endswith(video.VIDEO_SUFFIXES)
    if one_file and (len(clips) != 1 or images):
        raise InputError(f"--overlays {args.overlays}: one video file takes exactly one clip")


def _setup(args) -> tuple:
    """(photos, clips, box source, predictor, records) of the command line; InputError if bad."""
    photo_inputs, clips = split_inputs(args.inputs, args.video)
    images = find_images(photo_inputs)
    _check_clips(args, clips, images)
    crop_scale = args.crop_scale
    if crop_scale is None and args.boxes is None and args.detector == "none":
        crop_scale = 1.0  # whole images are taken as already cropped faces
    predictor = Predictor.load(
        args.checkpoint,
        args.step,
        batch_size=args.batch_size or (1 if clips and not images else 32),
        decoder=args.decoder,
        window=args.window,
        temperature=args.temperature,
        image_size=args.image_size,
        crop_scale=crop_scale,
        flip=args.flip,
    )
    source = box_source(args)
    return images, clips, source, predictor, Records(args.output, predictor.num_landmarks)


def _predict_all(args, images, source, predictor: Predictor, writer: Writer) -> int:
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


def _predict_clip(args, clip: str, source, predictor: Predictor, writer: Writer) -> int:
    """Tracks the faces of one clip frame by frame; the number of faces predicted."""
    path = epath.Path(clip)
    if path.is_dir():
        frames, fps = video.folder_frames(_image_files(path), args.fps)
    else:
        frames, fps = video.video_frames(path)
    smooth = None
    if args.smooth:
        smooth = smoothing.OneEuroParams(min_cutoff=args.min_cutoff, beta=args.beta)
    overlay = prediction_files.clip_overlay(args.overlays, clip, fps)
    tracked = video.track(
        frames,
        predictor,
        source,
        fps=fps,
        lost_score=args.lost_score,
        redetect_every=args.redetect_every,
        smooth=smooth,
        recrop=detectors.read_calibration(args.checkpoint, detectors.TRACKING),
    )
    predicted = 0
    for t, (frame, faces) in enumerate(tqdm.tqdm(tracked, unit="frame", disable=None)):
        for f in faces:
            record = face_record(
                clip, f.track, f.box, f.points, f.scores, frame=t, min_score=args.min_score
            )
            writer.records.write(record)
        if not faces:
            writer.records.write(face_record(clip, None, None, error="no face detected", frame=t))
        predicted += len(faces)
        if overlay is not None:
            prediction_files.draw_frame(overlay, t, frame, faces, args.min_score)
    if isinstance(overlay, video.VideoWriter):
        overlay.close()
    return predicted


def main(argv=None) -> int:
    args = _parse_args(argv)
    tf.config.set_visible_devices([], "GPU")  # tf.data crops on the host; the devices are JAX's
    started = time.time()
    try:
        images, clips, source, predictor, records = _setup(args)
    except (InputError, FileNotFoundError, ValueError, landmark_io.AnnotationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    writer = Writer(records, args.overlays, args.min_score)
    predicted = _predict_all(args, images, source, predictor, writer) if images else 0
    for clip in clips:
        try:
            predicted += _predict_clip(args, clip, source, predictor, writer)
        except (InputError, image_io.ImageError) as err:
            writer.failed.append(clip)
            writer.records.write(face_record(clip, None, None, error=str(err)))
    writer.close()
    failed, failed_names = writer.failed, sorted(set(writer.failed))
    seconds = time.time() - started
    inputs = f"{len(images)} images" + (f", {len(clips)} videos" if clips else "")
    faceless = f", {writer.faceless} without a face" if writer.faceless else ""
    print(
        f"{inputs}, {predicted} faces predicted, {len(failed)} failed{faceless} "
        f"({seconds:.1f} s, {predicted / max(seconds, 1e-9):.1f} faces/s)",
        file=sys.stderr,
    )
    for name in failed_names[:20]:
        print(f"  failed: {name}", file=sys.stderr)
    if len(failed_names) > 20:
        print(f"  ... and {len(failed_names) - 20} more (see the error records)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    xla_cpu.apply()  # before JAX starts: XLA reads its flags once
    sys.exit(main())
