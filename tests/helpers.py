"""Helpers shared by the tests (fixtures live in conftest.py): paths, configs, subprocesses, and
what a training workdir logged."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import tensorflow as tf

from sphm_jax import geometry, inference
from sphm_jax.training import checkpoints
from sphm_jax.training.configs import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The suite compiles hundreds of tiny programs, where XLA's LLVM backend dominates: at -O0 it
# compiles them 2-6x faster from the same HLO. Set before JAX starts,
# and inherited by every process the tests start; tests of the flags themselves clear it.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"


def mirror_points(points, width, flip_permutation):
    """Points of a mirrored image (x -> width - 1 - x) in the layout's semantic order (numpy)."""
    points = np.asarray(points)
    mirrored = points[..., list(flip_permutation), :] * np.array([-1, 1], points.dtype)
    return (mirrored + np.array([width - 1, 0], points.dtype)).astype(points.dtype)


def tiny_config(data_dir=None, **overrides):
    """configs/tiny.py reading `data_dir`, with fields overridden."""
    config = tiny.get_config()
    config.data_dir = data_dir
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def run_python(args, env_extra, timeout=300):
    env = {**os.environ, **env_extra, "PYTHONPATH": ROOT}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


# Twelve steps with a checkpoint every 4: room for a SIGTERM or a SIGKILL in the middle.
# SGD, not Adam: Adam's first steps are sign steps, which turn the reduction-order noise of
# exactly-zero gradients (conv biases before a BatchNorm) into full-size updates (5.7e-4 of
# the loss on an AVX2 machine) when the batch is split over devices and hosts; under SGD a
# rounding-sized difference of the all-reduce stays rounding-sized.
RELIABILITY_OVERRIDES = {"num_train_steps": 12, "checkpoint_every_steps": 4, "optimizer": "sgd"}


def cli_args(data_dir, workdir, overrides=RELIABILITY_OVERRIDES):
    """`python -m sphm_jax.main` on configs/tiny.py with config overrides, as argv after python."""
    flags = [f"--config.{k}={v}" for k, v in overrides.items()]
    return [
        "-m",
        "sphm_jax.main",
        "--config",
        "configs/tiny.py",
        f"--config.data_dir={data_dir}",
        *flags,
        f"--workdir={workdir}",
    ]


def logged_losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r["loss"] for r in map(json.loads, f) if "loss" in r]


def logged_steps(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r["step"] for r in map(json.loads, f) if "loss" in r]


def tensorboard_steps(workdir, tag="loss"):
    """Steps of every `tag` scalar in the TensorBoard event files of workdir, sorted."""
    files = tf.io.gfile.glob(os.path.join(workdir, "events.out.tfevents.*"))
    events = (e for f in files for e in tf.compat.v1.train.summary_iterator(f))
    return sorted(e.step for e in events for v in e.summary.value if v.tag == tag)


def assert_same_run(resumed, uninterrupted):
    """Same losses, logged once per step (metrics.jsonl and TensorBoard), same final variables."""
    steps = list(range(1, RELIABILITY_OVERRIDES["num_train_steps"] + 1))
    assert logged_steps(resumed) == steps
    assert tensorboard_steps(resumed) == steps
    np.testing.assert_array_equal(logged_losses(resumed), logged_losses(uninterrupted))
    a = checkpoints.restore(os.path.join(resumed, "checkpoints"))[1]
    b = checkpoints.restore(os.path.join(uninterrupted, "checkpoints"))[1]
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


# --- exported artefacts: run by their own runtimes, compared with inference ---

# float32 all through; the artefacts reorder sums (onnxruntime, XNNPACK), measured <= 1e-5 px.
LANDMARK_TOL_PX = 1e-3
SCORE_TOL = 1e-5
# Only the TFLite converter needs a fixed batch (see artefacts.export_tflite).
TFLITE_BATCH = 8


def expected(model, variables, images, settings):
    """inference.landmarks with identity crops: landmarks in crop pixels, and the scores."""
    identity = geometry.identity((len(images),))
    decoder = settings["decoder"]
    points, scores = inference.landmarks(
        model.apply,
        variables,
        images,
        identity,
        decoders=(decoder,),
        window=settings["window"],
        temperature=settings["temperature"],
    )
    return np.asarray(points[decoder]), np.asarray(scores)


def run_artefact(fmt, path, images):
    """The artefact run by its own runtime, as a user without sphm_jax would (docs/export.md)."""
    if fmt == "stablehlo":
        exported = jax.export.deserialize(bytearray(path.read_bytes()))
        return [np.asarray(a) for a in exported.call(images)]
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return session.run(["landmarks", "scores"], {"images": images})
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        out = Interpreter(model_path=str(path)).get_signature_runner()(images=images)
        return [out["landmarks"], out["scores"]]
    out = tf.saved_model.load(str(path)).signatures["serving_default"](images=tf.constant(images))
    return [out["landmarks"].numpy(), out["scores"].numpy()]


def assert_parity(got, want):
    assert got[0].shape == want[0].shape and got[1].shape == want[1].shape
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=LANDMARK_TOL_PX)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=SCORE_TOL)
