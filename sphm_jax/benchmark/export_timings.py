"""The export artefacts timed beside the jitted function they were exported from (--what export)."""

from __future__ import annotations

import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from sphm_jax.benchmark.records import interleaved_medians, record
from sphm_jax.models import FAN
from sphm_jax.toolkit import artefacts
from sphm_jax.training import paths


def _faces(image_size, batch, seed=0):
    return np.random.default_rng(seed).integers(
        0, 256, (batch, image_size, image_size, 3), np.uint8
    )


def _timed(config, impl, call, images, repeats, **extra) -> dict:
    seconds = interleaved_medians([lambda: call(images)], repeats)[0]
    return record("export", impl, config, seconds, len(images), **extra)


def export_artefacts(config, num_landmarks: int, repeats: int, batches=(1, 32)):
    """One record per (implementation, batch): faces/s, file size, max landmark difference.

    FAN(config.model) at config.image_size with random float32 weights (speed does not depend
    on them); "jax" is the jitted artefacts.exportable_fn every artefact is compared with. The
    tflite files are fixed-batch, so one is written per batch; the runtimes run on the CPU.
    """
    arch = {k: config.model[k] for k in ("num_stacks", "width", "depth")}
    model = FAN(num_landmarks=num_landmarks, **arch)
    size = config.image_size
    variables = model.init(jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False)
    fn = artefacts.exportable_fn(model, variables)
    jitted = jax.jit(fn)
    reference = {b: np.asarray(jitted(_faces(size, b))[0]) for b in batches}
    blocking = lambda x: jax.block_until_ready(jitted(x))  # noqa: E731
    for b in batches:
        yield _timed(config, "jax", blocking, _faces(size, b), repeats)
    with tempfile.TemporaryDirectory(prefix="sphm_export_") as output:
        for fmt in artefacts.FORMATS:
            for b in batches if fmt == "tflite" else batches[:1]:
                start = time.perf_counter()
                fixed = b if fmt == "tflite" else None
                path = artefacts.write(fn, fmt, size, paths.path(output) / f"{fmt}_{b}", fixed)
                export_s = time.perf_counter() - start
                # All cores, as XLA and onnxruntime take by default.
                run = artefacts.runner(fmt, path, num_threads=os.cpu_count())
                for rb in (b,) if fmt == "tflite" else batches:
                    got = run(_faces(size, rb))[0]
                    yield _timed(
                        config,
                        fmt,
                        run,
                        _faces(size, rb),
                        repeats,
                        device="cpu",
                        megabytes=artefacts.file_bytes(path) / 1e6,
                        export_s=export_s,
                        max_landmark_diff_px=float(np.max(np.abs(got - reference[rb]))),
                    )
