"""Face detectors, measured and calibrated.

    python -m sphm_jax.detect compare [--detectors mtcnn,dlib,lbp] [--scenes 60]
    python -m sphm_jax.detect calibrate --checkpoint WORKDIR [--detector mtcnn]

`compare` measures each detector's recall, false detections and seconds per image on the real
photographs that installed packages ship (scikit-image's astronaut and LFW subset, matplotlib's
Grace Hopper) and on rendered group scenes of synthetic faces with exact boxes. `calibrate` fits
the detector box -> training box calibration on the workdir's training split, measures the
landmark NME on its test split with the training boxes, the raw and the calibrated detector
boxes, and stores the calibration in WORKDIR/detector_calibration.json, where predict finds it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np

from sphm_jax import geometry, metrics
from sphm_jax.data import sample_photos
from sphm_jax.data.boxes import InputError, match
from sphm_jax.toolkit import detectors
from sphm_jax.training import xla_cpu


def rendered_scene(seed: int, faces: int = 2, size: int = 256, fraction: float = 0.5):
    """(image uint8[size, faces * size, 3], boxes float32[faces, 4], landmarks [faces, 68, 2]):
    synthetic faces shrunk to `fraction` of their tile, side by side (a group photo)."""
    from sphm_jax.data import synthetic_faces  # pylint: disable=g-import-not-at-top

    tiles, boxes, points = [], [], []
    for f in range(faces):
        p = synthetic_faces.sample_params([seed, f], size)
        centre = tuple(size / 2 + (c - size / 2) * fraction for c in p.center)
        face = synthetic_faces.render(
            dataclasses.replace(p, scale=p.scale * fraction, center=centre)
        )
        tiles.append(face.image)
        points.append(face.landmarks + [f * size, 0])
        boxes.append(geometry.tight_box(points[-1]))
    return np.concatenate(tiles, axis=1), np.stack(boxes), np.stack(points)


def score(detect, images) -> dict:
    """Recall, false detections and seconds per image of one detector over (name, image, faces)."""
    found = missed = false = 0
    seconds = []
    for _, image, faces in images:
        start = time.perf_counter()
        boxes, _ = detect(image)
        seconds.append(time.perf_counter() - start)
        hits = match(boxes, faces)
        found += int(np.sum(hits >= 0))
        missed += int(np.sum(hits < 0))
        false += len(boxes) - int(np.sum(hits >= 0))
    return {
        "faces": found + missed,
        "recall": found / max(found + missed, 1),
        "false_detections": false,
        "images": len(images),
        "s_per_image": float(np.median(seconds)),
    }


def compare(names, scenes: int) -> dict:
    """{detector: {set: score}} on the shipped photographs and `scenes` rendered scenes."""
    photos = sample_photos.shipped_photos()
    sets = {
        "photos (astronaut, Grace Hopper)": photos[:2],
        "LFW faces (100)": [p for p in photos if "_face_" in p[0]],
        "LFW non-faces (100)": [p for p in photos if "_nonface_" in p[0]],
        f"rendered scenes ({scenes} x 2 faces, 512 x 256)": [
            (f"scene_{s}", *rendered_scene(1000 + s)[:2]) for s in range(scenes)
        ],
    }
    results = {}
    for name in names:
        detect = detectors.load_detector(name)
        detect(photos[0][1])  # builds the network's graphs outside the timings
        results[name] = {label: score(detect, images) for label, images in sets.items()}
    return results


def format_comparison(results: dict) -> str:
    """A markdown table: recall (found / faces), false detections and median ms per image."""
    labels = list(next(iter(results.values())))
    lines = ["| detector | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for name, by_set in results.items():
        cells = []
        for label in labels:
            s = by_set[label]
            recall = f"{round(s['recall'] * s['faces'])}/{s['faces']}, " if s["faces"] else ""
            cells.append(f"{recall}{s['false_detections']} false, {1e3 * s['s_per_image']:.0f} ms")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- calibration on a workdir's dataset ---------------------------------------------------------


def padded(example: dict, pad: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, box, landmarks) with `pad` x the longer side of the image's mean colour around it:
    a face that fills its image (synthetic_faces, tight crops) needs context to be detected."""
    image = np.asarray(example["image"])
    p = round(pad * max(image.shape[:2]))
    fill = image.reshape(-1, 3).mean(0)
    out = np.empty((image.shape[0] + 2 * p, image.shape[1] + 2 * p, 3), np.uint8)
    out[...] = np.round(fill).astype(np.uint8)
    out[p : p + image.shape[0], p : p + image.shape[1]] = image
    return out, np.asarray(example["bbox"]) + p, np.asarray(example["landmarks"]) + p


def detected_faces(detect, examples, pad: float):
    """(image, detector box, training box, landmarks, visible) of each example's face that the
    detector finds (match()), and how many examples there were."""
    found, total = [], 0
    for example in examples:
        total += 1
        image, box, landmarks = padded(example, pad)
        boxes, _ = detect(image)
        hit = match(boxes, box[None])[0]
        if hit >= 0:
            found.append((image, boxes[hit], box, landmarks, example["visible"]))
    return found, total


def calibration_nmes(predictor, faces, calibration) -> dict:
    """Test NME (inter-ocular, mean over faces) with the training, raw and calibrated boxes."""
    rows = {"training box": [], "detector box": [], "calibrated detector box": []}
    gts, vis = [], []
    for image, det, box, landmarks, visible in faces:
        points, _ = predictor(image, [box, det, calibration.apply(det[None])[0]])
        for row, p in zip(rows.values(), points):
            row.append(p)
        gts.append(landmarks)
        vis.append(visible)
    gt, vis = np.stack(gts), np.stack(vis)
    return {
        k: float(np.mean(metrics.nme(np.stack(v), gt, "inter_ocular", vis)))
        for k, v in rows.items()
    }


def calibrate(workdir: str, detector_name: str, *, fit_faces: int, test_faces: int, pad: float):
    """Fits, measures and stores the calibration of `detector_name` for a training workdir."""
    import ml_collections  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    from sphm_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
    from sphm_jax.toolkit.predictor import Predictor  # pylint: disable=g-import-not-at-top
    from sphm_jax.training import paths  # pylint: disable=g-import-not-at-top

    config_path = paths.path(workdir) / "config.json"
    if not config_path.exists():
        raise InputError(
            f"{workdir}: not a training workdir (no config.json: its dataset is needed)"
        )
    config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    builder = input_pipeline.load_builder(config.dataset, config)
    split = lambda name, n: tfds.as_numpy(
        builder.as_dataset(split=name, shuffle_files=False).take(n)
    )
    detect = detectors.load_detector(detector_name)
    fit_examples = list(split(config.train_split, fit_faces))
    fit, fit_total = detected_faces(detect, fit_examples, pad)
    if not fit:
        raise InputError(
            f"{detector_name} found no face of {config.dataset}'s {config.train_split}"
        )
    cal = detectors.fit_calibration(detector_name, [f[1] for f in fit], [f[2] for f in fit])
    test_split = config.eval_splits[0]
    test_examples = list(split(test_split, test_faces))
    test, test_total = detected_faces(detect, test_examples, pad)
    if not test:
        raise InputError(f"{detector_name} found no face of {config.dataset}'s {test_split} split")
    predictor = Predictor.load(workdir)
    measured = {
        "dataset": config.dataset,
        "fit": f"{config.train_split}: {len(fit)} of {fit_total} faces found",
        "test": f"{test_split}: {len(test)} of {test_total} faces found",
        "pad": pad,
        "nme_inter_ocular": calibration_nmes(predictor, test, cal),
    }
    tracking = tracking_calibration(predictor, fit_examples)
    faces = [
        (e["image"], tight_predicted(predictor, e), e["bbox"], e["landmarks"], e["visible"])
        for e in test_examples
    ]
    tracked = calibration_nmes(predictor, faces, tracking)
    tracked = dict(zip(("training box", "previous landmarks' box", "calibrated"), tracked.values()))
    detectors.write_calibration(workdir, tracking, {"nme_inter_ocular": tracked})
    measured["tracking"] = {**dataclasses.asdict(tracking), "nme_inter_ocular": tracked}
    return cal, measured, detectors.write_calibration(workdir, cal, measured)


def tight_predicted(predictor, example) -> np.ndarray:
    """The tight box of the landmarks predicted from the training box: what a tracker crops."""
    points, _ = predictor(example["image"], [example["bbox"]])
    return np.asarray(geometry.tight_box(points[0]))


def tracking_calibration(predictor, examples) -> detectors.Calibration:
    """The model's own landmark box -> training box, fitted on training faces: a tracker that
    crops each frame from the previous landmarks without it drifts with the model's bias."""
    boxes = [tight_predicted(predictor, e) for e in examples]
    return detectors.fit_calibration(detectors.TRACKING, boxes, [e["bbox"] for e in examples])


# --- the command line ---------------------------------------------------------------------------


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m sphm_jax.detect", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cmp_ = sub.add_parser("compare", help="recall and speed of the detectors")
    cmp_.add_argument("--detectors", default=",".join(detectors.DETECTORS))
    cmp_.add_argument("--scenes", type=int, default=60, help="rendered two-face scenes")
    cmp_.add_argument("--output", help="write the results as JSON here")
    cal = sub.add_parser("calibrate", help="fit and store a detector's calibration for a workdir")
    cal.add_argument("--checkpoint", required=True, help="a training workdir")
    cal.add_argument("--detector", default=detectors.DEFAULT_DETECTOR, choices=detectors.DETECTORS)
    cal.add_argument("--fit_faces", type=int, default=300, help="training-split faces to fit on")
    cal.add_argument("--test_faces", type=int, default=500, help="test-split faces to measure on")
    cal.add_argument("--pad", type=float, default=0.25, help="context added around each image")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse_args(argv)
    try:
        if args.command == "compare":
            results = compare(args.detectors.split(","), args.scenes)
            print(format_comparison(results))
            if args.output:
                with open(args.output, "w") as f:
                    json.dump(results, f, indent=2)
            return 0
        cal, measured, path = calibrate(
            args.checkpoint,
            args.detector,
            fit_faces=args.fit_faces,
            test_faces=args.test_faces,
            pad=args.pad,
        )
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({**dataclasses.asdict(cal), "measured": measured}, indent=2))
    print(f"written: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    xla_cpu.apply()  # before JAX starts: XLA reads its flags once
    sys.exit(main())
