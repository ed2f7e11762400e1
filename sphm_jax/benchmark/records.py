"""The benchmark's records: the timer, a measurement's JSON record and FLOP fields, the inputs.

A record is one JSON line: rates, the device and config it belongs to, and the machine's state.
"""

from __future__ import annotations

import os
import statistics
import time

import jax
import numpy as np

from sphm_jax import heatmaps
from sphm_jax.training import xla_cpu

# Dense peak TFLOP/s per device: (device kind substring, bfloat16, float32 as the matmul units
# run it). float32 on GPUs runs as TF32 under JAX's and torch-AMP-free default precision; TPUs
# run it in bf16 passes.
PEAK_TFLOPS = (
    ("H100 PCIe", 756.0, 378.0),
    ("H100", 989.4, 494.7),
    ("H200", 989.4, 494.7),
    ("A100", 312.0, 156.0),
    ("TPU v4", 275.0, 275.0),
    ("TPU v5 lite", 197.0, 197.0),
    ("TPU v5e", 197.0, 197.0),
    ("TPU v5p", 459.0, 459.0),
    ("TPU v6 lite", 918.0, 918.0),
)


def peak_tflops(device_kind: str, dtype: str) -> float | None:
    """The device's dense peak for dtype, or None where unknown (CPUs)."""
    for name, bf16, f32 in PEAK_TFLOPS:
        if name.lower() in device_kind.lower():
            return bf16 if dtype == "bfloat16" else f32
    return None


def interleaved_medians(calls, repeats: int) -> list[float]:
    """Median wall time of each `call()` (each blocks until its work is done) after a warm-up.

    The calls take turns, so a change in the machine's load hits all of them alike.
    """
    for call in calls:
        call()
    times = [[] for _ in calls]
    for _ in range(repeats):
        for call, spent in zip(calls, times):
            start = time.perf_counter()
            call()
            spent.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def synthetic_batch(config, num_landmarks: int, batch_size: int, seed: int = 0) -> dict:
    """A random training/eval batch: uint8 crops, landmarks inside the face area, all visible."""
    rng = np.random.default_rng(seed)
    size = config.image_size
    return {
        "image": rng.integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8),
        "landmarks": rng.uniform(0.2 * size, 0.8 * size, (batch_size, num_landmarks, 2)).astype(
            np.float32
        ),
        "visible": np.ones((batch_size, num_landmarks), np.float32),
        "crop": np.tile(np.eye(2, 3, dtype=np.float32), (batch_size, 1, 1)),
    }


def record(
    what: str, impl: str, config, seconds: float, batch_size: int, device=None, **extra
) -> dict:
    """A measurement's JSON record; device: where a non-JAX implementation ran (a name)."""
    if device is None:
        device = jax.devices()[0] if impl == "jax" else extra.pop("torch_device")
    kind = device if isinstance(device, str) else device.device_kind
    # JAX steps split the batch over every device; decode, input and the reference use one.
    num_devices = jax.device_count() if impl == "jax" and what in ("train", "eval") else 1
    return {
        "what": what,
        "impl": impl,
        "images_per_s": batch_size / seconds,
        "images_per_s_per_device": batch_size / seconds / num_devices,
        "batch_size": batch_size,
        "step_ms": 1e3 * seconds,
        "device": kind,
        "num_devices": num_devices,
        "image_size": config.image_size,
        "num_stacks": config.model.num_stacks,
        "width": config.model.width,
        "dtype": config.dtype,
        # Timings on a shared machine mean little without it.
        "load_avg_1min": os.getloadavg()[0],
        # Which CPU and which XLA paths (the flags XLA read) the figure belongs to.
        "cpu": xla_cpu.cpu_model(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        **extra,
    }


def flops_fields(flops_per_step: float | None, seconds: float, device_kind: str, dtype: str):
    """Achieved TFLOP/s per device and its fraction of the peak (None where unknown)."""
    if not flops_per_step:
        return {"tflops": None, "peak_tflops": None, "peak_fraction": None}
    achieved = flops_per_step / seconds / 1e12
    peak = peak_tflops(device_kind, dtype)
    return {
        "tflops": achieved,
        "peak_tflops": peak,
        "peak_fraction": achieved / peak if peak else None,
    }


def decode_heatmaps(config, num_landmarks: int, faces: int) -> np.ndarray:
    """Network-like maps: a Gaussian at a random point per landmark plus a little noise."""
    rng = np.random.default_rng(0)
    size = config.heatmap_size
    points = rng.uniform(2.0, size - 3.0, (faces, num_landmarks, 2)).astype(np.float32)
    maps = np.asarray(heatmaps.encode(points, (size, size), config.sigma))
    return maps + rng.normal(0.0, 0.01, maps.shape).astype(np.float32)
