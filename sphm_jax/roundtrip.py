r"""The paper's Fig. 3: NME after encoding then decoding ground-truth landmarks.

Each face is cropped as in training (a square around its landmarks, the face
`face_size` px of an `image_size` crop), its points are encoded as heatmaps,
decoded, and mapped back to the original image, where the NME is measured.
Baseline: quantized centres + FAN's +-0.25 decoding; ours: continuous centres
+ local soft-argmax.

  python -m sphm_jax.roundtrip                       # synthetic landmarks
  python -m sphm_jax.roundtrip ~/300w/ibug ~/300w/helen/testset faces.npy
  python -m sphm_jax.roundtrip --sigmas=1,1.5,2,3 --norm=box DIR

A positional argument is a folder of `.pts` files (searched recursively), a
glob, or a `.npy` file holding float[N, K, 2] 0-based image points.
"""

from __future__ import annotations

import functools
import glob
import json
import os
from collections.abc import Sequence

import jax
import numpy as np
import tqdm
from absl import app, flags

from sphm_jax import geometry, heatmaps, layouts, metrics
from sphm_jax.data import landmark_io, synthetic_faces
from sphm_jax.training import xla_cpu

# (name, quantize, decoder) of each compared pipeline.
PIPELINES = (
    ("baseline_round", "round", "argmax_quarter"),
    ("baseline_floor", "floor", "argmax_quarter"),
    ("ours", None, "local_softargmax"),
)

FLAGS = flags.FLAGS


def crop_matrices(landmarks, image_size, face_size) -> jax.Array:
    """Crops a square around each face's tight landmark box, the face `face_size` px wide."""
    return geometry.box_crop(geometry.tight_box(landmarks), image_size, image_size / face_size)


@functools.partial(jax.jit, static_argnames=("shape", "quantize", "method", "window", "stride"))
def encode_decode(points, crop, *, shape, sigma, quantize, method, window, temperature, stride):
    """Image points -> crop -> heatmap -> encode -> decode -> back to the image."""
    in_map = geometry.image_to_heatmap(geometry.transform_points(points, crop), stride)
    hm = heatmaps.encode(in_map, shape, sigma, quantize)
    decoded = heatmaps.decode(hm, method, window, temperature)
    return geometry.transform_points(
        geometry.heatmap_to_image(decoded, stride), geometry.invert(crop)
    )


def roundtrip_nmes(
    landmarks,
    sigma,
    quantize,
    method,
    *,
    norm,
    image_size=256,
    heatmap_size=64,
    face_size=220.0,
    window=5,
    temperature=10.0,
    chunk=128,
) -> np.ndarray:
    """Per-face NME of the encode -> decode roundtrip, float[N]."""
    landmarks = np.asarray(landmarks, np.float32)
    stride = image_size // heatmap_size
    crops = crop_matrices(landmarks, image_size, face_size)
    decoded = [
        encode_decode(
            landmarks[i : i + chunk],
            crops[i : i + chunk],
            shape=(heatmap_size,) * 2,
            sigma=sigma,
            quantize=quantize,
            method=method,
            window=window,
            temperature=temperature,
            stride=stride,
        )
        for i in range(0, len(landmarks), chunk)
    ]
    return np.asarray(metrics.nme(np.concatenate(decoded), landmarks, norm))


def load_landmark_set(spec: str) -> tuple[str, np.ndarray]:
    """(name, float32[N, K, 2]) from a folder of .pts files, a glob, or a .npy file."""
    if spec.endswith(".npy"):
        array = np.load(spec, allow_pickle=False)
        if array.ndim != 3 or array.shape[-1] != 2:
            raise ValueError(f"{spec}: expected an array [N, K, 2], got shape {array.shape}")
        return os.path.splitext(os.path.basename(spec))[0], array.astype(np.float32)
    if os.path.isdir(spec):
        files = sorted(glob.glob(os.path.join(spec, "**", "*.pts"), recursive=True))
    else:
        files = sorted(glob.glob(spec, recursive=True))
    if not files:
        raise ValueError(f"{spec}: no .pts files found (give a folder, a glob or a .npy file)")
    points = [landmark_io.read_pts(f) for f in files]
    counts = {p.shape[0] for p in points}
    if len(counts) != 1:
        raise ValueError(f"{spec}: files have different point counts {sorted(counts)}")
    return os.path.basename(os.path.normpath(spec)) or spec, np.stack(points)


def default_norm(num_landmarks: int) -> str:
    try:
        layouts.get_layout(num_landmarks)
    except ValueError:
        return "box"
    return "inter_ocular"


def report(
    sets: Sequence[tuple[str, np.ndarray]], sigmas: Sequence[float], norm=None, **kwargs
) -> list[dict]:
    """One row per (set, sigma) with the mean NME of every pipeline."""
    rows = []
    bar = tqdm.tqdm(total=len(sets) * len(sigmas) * len(PIPELINES), unit="run", disable=None)
    for name, landmarks in sets:
        set_norm = norm or default_norm(landmarks.shape[1])
        for sigma in sigmas:
            row = {
                "set": name,
                "faces": len(landmarks),
                "points": landmarks.shape[1],
                "norm": set_norm,
                "sigma": sigma,
            }
            for label, quantize, method in PIPELINES:
                nmes = roundtrip_nmes(landmarks, sigma, quantize, method, norm=set_norm, **kwargs)
                row[label] = float(np.mean(nmes))
                bar.update()
            rows.append(row)
    bar.close()
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """A markdown table of NMEs in percent."""
    head = (
        "| set | faces | points | norm | sigma | baseline round+0.25 (%) "
        "| baseline floor+0.25 (%) | ours (%) | ours / baseline round |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['faces']} | {r['points']} | {r['norm']} | {r['sigma']:g} "
            f"| {100 * r['baseline_round']:.4f} | {100 * r['baseline_floor']:.4f} "
            f"| {100 * r['ours']:.4f} | {r['ours'] / r['baseline_round']:.3f} |"
        )
    return "\n".join(lines)


def define_flags():
    """The command's flags, defined only when it runs: importing roundtrip defines none."""
    flags.DEFINE_list("sigmas", ["1", "1.5", "2"], "Gaussian sigmas in heatmap px.")
    flags.DEFINE_enum(
        "norm",
        None,
        metrics.NORMS,
        "NME normalisation; default inter_ocular where the layout has eyes.",
    )
    flags.DEFINE_integer("num_synthetic", 2000, "Faces in the synthetic set.")
    flags.DEFINE_integer("seed", 0, "Seed of the synthetic set.")
    flags.DEFINE_integer("image_size", 256, "Network input side, px.")
    flags.DEFINE_integer("heatmap_size", 64, "Heatmap side, px.")
    flags.DEFINE_float("face_size", 220.0, "Face side inside the crop, px.")
    flags.DEFINE_integer("window", 5, "Local soft-argmax window.")
    flags.DEFINE_float("temperature", 10.0, "Local soft-argmax temperature.")
    flags.DEFINE_string("json", None, "Also write the results to this JSON file.")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        sets = [load_landmark_set(spec) for spec in argv[1:]]
    else:
        landmarks, _ = synthetic_faces.sample_landmarks(FLAGS.seed, FLAGS.num_synthetic)
        sets = [("synthetic", landmarks)]
    rows = report(
        sets,
        [float(s) for s in FLAGS.sigmas],
        FLAGS.norm,
        image_size=FLAGS.image_size,
        heatmap_size=FLAGS.heatmap_size,
        face_size=FLAGS.face_size,
        window=FLAGS.window,
        temperature=FLAGS.temperature,
    )
    print(format_table(rows))
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    xla_cpu.apply()  # before JAX starts: XLA reads its flags once
    define_flags()
    app.run(main)
