"""Stability and confidence of trained models, measured: python -m sphm_jax.stability
--checkpoint W1 [--checkpoint W2 ...] [--label L ...] [--output_dir DIR].

For each model, on its workdir's dataset and on rendered clips:
  consistency  ground-truth free: the same test face seen through small transformations
               (sub-pixel shifts, +-5 % scales, +-5 degree rotations), each prediction mapped
               back to the original image; the spread of the predictions (metrics.spread) in %
               of the inter-ocular distance. The paper's claim for Siamese training, directly.
  jitter       on rendered clips of a smoothly moving synthetic face with exact landmarks per
               frame: NME (inter-ocular) and NMJ (metrics.nmj: RMS frame-to-frame change of
               the error in % of the face size, as LDEQ), once through predict's video path
               (detector on the first frame, then crops from the previous landmarks, no
               smoothing) and once cropping every frame from its true box (the model alone).
  confidence   Spearman rank correlation between each point's heatmap peak score and its
               error on the test split, and the error of the points below RELIABLE_SCORE.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

import jax
import numpy as np

from sphm_jax import geometry, metrics
from sphm_jax.data import sample_photos, synthetic_faces
from sphm_jax.data.boxes import InputError
from sphm_jax.toolkit import detectors, video
from sphm_jax.toolkit.predictor import RELIABLE_SCORE, Predictor
from sphm_jax.training import xla_cpu

# (kind, x and y shift in heatmap pixels, scale, degrees), each about the face box's centre.
VIEWS = (
    ("identity", 0.0, 0.0, 1.0, 0.0),
    *(("shift", d, 0.0, 1.0, 0.0) for d in (0.25, 0.5, 0.75)),
    *(("shift", 0.0, d, 1.0, 0.0) for d in (0.25, 0.5, 0.75)),
    ("scale", 0.0, 0.0, 0.95, 0.0),
    ("scale", 0.0, 0.0, 1.05, 0.0),
    ("rotation", 0.0, 0.0, 1.0, -5.0),
    ("rotation", 0.0, 0.0, 1.0, 5.0),
)


def view_matrix(view, centre, heatmap_px: float) -> np.ndarray:
    """The affine (original -> transformed image) of one view of a face centred at `centre`."""
    _, dx, dy, s, degrees = view
    about = geometry.compose(geometry.scale(s, s, centre), geometry.rotation(degrees, centre))
    shift = geometry.translation(dx * heatmap_px, dy * heatmap_px)
    return np.asarray(geometry.compose(about, shift))  # compose applies its first matrix first


@functools.partial(jax.jit, static_argnums=2)
def _warp(image, matrix, shape):
    return geometry.warp_affine(image, matrix, shape)


def view_points(predictor: Predictor, heatmap_size: int, image, box) -> np.ndarray:
    """Predictions [V, K, 2] for every view of one face, mapped back to the original image."""
    side = predictor.crop_scale * float(np.max(box[2:] - box[:2]))
    centre = 0.5 * (box[:2] + box[2:])
    crops, matrices = [], []
    for view in VIEWS:
        t = view_matrix(view, centre, side / heatmap_size)
        warped = np.asarray(_warp(image, t, image.shape[:2]))
        crop, m = predictor.crop(np.uint8(np.clip(np.round(warped), 0, 255)), box)
        crops.append(crop)
        matrices.append(np.asarray(geometry.compose(t, m)))  # original -> crop of the view
    points, _ = predictor.predict_crops(crops, matrices)
    return points


def test_examples(workdir: str, limit: int) -> tuple[list[dict], int]:
    """The first `limit` examples of the workdir's test split, and its heatmap size."""
    import ml_collections  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    from sphm_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
    from sphm_jax.training import paths  # pylint: disable=g-import-not-at-top

    path = paths.path(workdir) / "config.json"
    if not path.exists():
        raise InputError(f"{workdir}: not a training workdir (no config.json)")
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
    builder = input_pipeline.load_builder(config.dataset, config)
    ds = builder.as_dataset(split=config.eval_splits[0], shuffle_files=False).take(limit)
    return list(tfds.as_numpy(ds)), int(config.heatmap_size)


def consistency(predictor, heatmap_size, examples) -> dict:
    """{view kind: mean spread (fraction of the inter-ocular distance)} over the examples."""
    points = np.stack(
        [view_points(predictor, heatmap_size, e["image"], e["bbox"]) for e in examples], 1
    )
    gt = np.stack([e["landmarks"] for e in examples])
    iod = np.asarray(metrics.normalizer(gt, "inter_ocular"))
    kinds = [v[0] for v in VIEWS]
    out = {"all": float(np.mean(metrics.spread(points, iod)))}
    for kind in dict.fromkeys(kinds[1:]):
        chosen = [i for i, k in enumerate(kinds) if k in ("identity", kind)]
        out[kind] = float(np.mean(metrics.spread(points[chosen], iod)))
    return out


def confidence(predictor, examples) -> dict:
    """Rank correlation of peak score and point error, and the error of the flagged points."""
    from scipy import stats  # pylint: disable=g-import-not-at-top

    pred, scores = [], []
    for e in examples:
        p, s = predictor(e["image"], [e["bbox"]])
        pred.append(p[0])
        scores.append(s[0])
    pred, scores = np.stack(pred), np.stack(scores)
    gt = np.stack([e["landmarks"] for e in examples])
    iod = np.asarray(metrics.normalizer(gt, "inter_ocular"))
    errors = np.linalg.norm(pred - gt, axis=-1) / iod[:, None]
    rho = stats.spearmanr(scores.ravel(), errors.ravel())
    flagged = scores < RELIABLE_SCORE
    quintiles = np.quantile(scores, [0.2, 0.4, 0.6, 0.8])
    bins = np.digitize(scores, quintiles)
    return {
        "spearman": float(rho.statistic),
        "p": float(rho.pvalue),
        "points": int(errors.size),
        "flagged_fraction": float(np.mean(flagged)),
        "flagged_error": float(np.mean(errors[flagged])) if flagged.any() else None,
        "unflagged_error": float(np.mean(errors[~flagged])) if (~flagged).any() else None,
        "error_by_score_quintile": [float(np.mean(errors[bins == b])) for b in range(5)],
        "score_quintile_edges": [float(q) for q in quintiles],
    }


def _runs(found) -> list[slice]:
    """The runs of consecutive frames (2 or more) where the face was found."""
    runs, start = [], None
    for t, ok in enumerate([*found, False]):
        if ok and start is None:
            start = t
        elif not ok and start is not None:
            runs += [slice(start, t)] if t - start >= 2 else []
            start = None
    return runs


def shipped_scores(predictor) -> dict:
    """How the peak scores read off faces: on scikit-image's LFW patches (100 real faces, out
    of a synthetic model's domain, and 100 non-faces), the points under RELIABLE_SCORE."""
    out = {}
    for kind in ("face", "nonface"):
        images = [(im, f) for n, im, f in sample_photos.shipped_photos() if f"_{kind}_" in n]
        box = np.float32([39.5, 39.5, 139.5, 139.5])  # where the patch lies in its canvas
        scores = np.concatenate([predictor(im, [box])[1][0] for im, _ in images])
        out[f"lfw_{kind}s"] = {
            "median_score": float(np.median(scores)),
            "flagged_fraction": float(np.mean(scores < RELIABLE_SCORE)),
        }
    return out


def clip_jitter(predictor, find_faces, seeds, frames: int, size: int, recrop=None) -> dict:
    """NME and NMJ on rendered clips, through the video path and from the true boxes; the video
    path counts the frames where the detector or tracker had the face (one face per clip)."""
    nmes = {"tracked": [], "true boxes": []}
    nmjs = {"tracked": [], "true boxes": []}
    found = 0
    for seed in seeds:
        clip, gt = synthetic_faces.render_clip(seed, frames, size)
        follow = video.track(clip, predictor, find_faces, recrop=recrop)
        tracked = [f[0].points if len(f) == 1 else None for _, f in follow]
        true = [predictor(frame, [geometry.tight_box(g)])[0][0] for frame, g in zip(clip, gt)]
        have = [p is not None for p in tracked]
        found += sum(have)
        for name, points, runs in (
            ("tracked", tracked, _runs(have)),
            ("true boxes", true, [slice(0, frames)]),
        ):
            for run in runs:
                pred = np.stack(points[run])
                nmes[name] += list(np.asarray(metrics.nme(pred, gt[run], "inter_ocular")))
                nmjs[name] += list(np.asarray(metrics.nmj(pred, gt[run])))
    out = {
        # NMJ as LDEQ aggregates it: the RMS over every transition of every clip.
        name: {
            "nme": float(np.mean(nmes[name])),
            "nmj": float(np.sqrt(np.mean(np.square(nmjs[name])))),
        }
        for name in nmes
        if nmjs[name]
    }
    if "tracked" in out:
        out["tracked"]["frames"] = f"{found} of {len(seeds) * frames}"
    return out


def measure(workdir: str, args) -> dict:
    predictor = Predictor.load(workdir, batch_size=32)
    examples, heatmap_size = test_examples(workdir, args.faces)
    if predictor.num_landmarks != 68:
        raise InputError(f"{workdir}: the rendered clips have 68 points")
    result = {
        "consistency": consistency(predictor, heatmap_size, examples),
        "confidence": {**confidence(predictor, examples), **shipped_scores(predictor)},
    }
    one = Predictor.load(workdir, batch_size=1)  # the video path runs frame by frame
    find = detectors.face_finder(args.detector, workdir)
    recrop = detectors.read_calibration(workdir, detectors.TRACKING)
    result["jitter"] = clip_jitter(one, find, range(args.clips), args.frames, 256, recrop)
    return result


def format_table(results: dict) -> str:
    """Markdown: consistency, jitter and confidence per model (percent of inter-ocular)."""
    header = (
        "| model | spread, all views (% IOD) | shifts | scales | rotations | NME tracked (% IOD) | "
        "NMJ tracked (% face) | NME true boxes (% IOD) | NMJ true boxes (% face) | "
        "Spearman(score, error) |"
    )
    lines = [header, "|---" * 10 + "|"]
    for label, r in results.items():
        c, j = r["consistency"], r["jitter"]
        cell = lambda row, k, j=j: f"{100 * j[row][k]:.3f}" if row in j else "n/a"
        lines.append(
            f"| {label} | {100 * c['all']:.3f} | {100 * c['shift']:.3f} | {100 * c['scale']:.3f} | "
            f"{100 * c['rotation']:.3f} | {cell('tracked', 'nme')} | {cell('tracked', 'nmj')} | "
            f"{cell('true boxes', 'nme')} | {cell('true boxes', 'nmj')} | "
            f"{r['confidence']['spearman']:.3f} |"
        )
    return "\n".join(lines)


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m sphm_jax.stability", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--checkpoint", action="append", required=True, help="a training workdir; repeatable"
    )
    parser.add_argument("--label", action="append", help="a name per --checkpoint")
    parser.add_argument(
        "--faces", type=int, default=500, help="test faces for consistency/confidence"
    )
    parser.add_argument("--clips", type=int, default=3, help="rendered clips (seeds 0, 1, ...)")
    parser.add_argument("--frames", type=int, default=48, help="frames per clip")
    parser.add_argument(
        "--detector", default=detectors.DEFAULT_DETECTOR, choices=detectors.DETECTORS
    )
    parser.add_argument("--output_dir", help="stability.json and table.md go here")
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.checkpoint):
        parser.error(f"{len(args.label)} --label for {len(args.checkpoint)} --checkpoint")
    return args


def main(argv=None) -> int:
    args = _parse_args(argv)
    labels = args.label or [os.path.basename(os.path.normpath(c)) for c in args.checkpoint]
    try:
        results = {label: measure(c, args) for label, c in zip(labels, args.checkpoint)}
    except (InputError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = format_table(results)
    print(table)
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        with open(os.path.join(args.output_dir, "stability.json"), "w") as f:
            json.dump(
                {"results": results, "views": VIEWS, "reliable_score": RELIABLE_SCORE}, f, indent=2
            )
        with open(os.path.join(args.output_dir, "table.md"), "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    xla_cpu.apply()  # before JAX starts: XLA reads its flags once
    sys.exit(main())
