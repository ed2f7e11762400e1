"""Helpers shared by the tests (fixtures live in conftest.py): paths, configs, subprocesses, and
what a training workdir logged."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import tensorflow as tf

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
