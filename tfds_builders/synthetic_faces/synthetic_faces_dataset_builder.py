"""synthetic_faces: procedural 68-point faces, rendered on the spot (no download).

Each example is `sphm_jax.data.synthetic_faces.render(sample_params(rng, image_size))` with
`rng` seeded by (config seed, split, index), so a build is deterministic and
any example can be re-rendered alone. The 68 points follow the iBUG order, so the
300W layout, flip permutation and inter-ocular indices apply unchanged.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import io
import multiprocessing
import os
import zlib

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from sphm_jax.data import synthetic_faces
from tfds_builders import common

NUM_LANDMARKS = 68
SPLITS = ("train", "test")  # a split's position here is part of its examples' seeds

_DESCRIPTION = """
Procedural face-like images with 68 landmarks in the iBUG (300W) order, exact to a
fraction of a pixel: every drawn feature (face outline, brows, eyes, nose, lips) is a
curve through the landmarks, rasterized with exact area coverage. Faces vary in shape,
expression (mouth open/closed, eye openness, brow raise, smile), in-plane rotation
(+-45 deg), a yaw-like foreshortening (+-35 deg), scale (about 220/256 of the image wide,
x0.83-1.18) and position; skin, hair, background colours and textures, lighting gradients,
random occluders, blur and noise. `landmarks` are 0-based (x, y) pixels (pixel centres at
integers), all `visible`; `bbox` is the tight box of the 68 landmarks. Metadata: `yaw` and
`roll` (degrees), `mouth_open` (0 closed .. 1 wide), `occluded` (1 where an occluder covers
the landmark's pixel; such points are still labelled, as 300W labels every point).
"""


@dataclasses.dataclass
class SyntheticFacesConfig(common.LandmarkConfig):
    """num_train / num_test examples of image_size x image_size px, rendered from `seed`."""

    num_train: int = 5000
    num_test: int = 500
    image_size: int = 256
    seed: int = 0


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one example: independent of every other example and of build order."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes by Pillow with zlib's run-length strategy.

    TFDS's own encoder (tf.image.encode_png) takes ~28 ms per 256 x 256 image here,
    this ~3 ms, for files about the same size (~90 KB: sensor noise does not compress).
    """
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return buffer.getvalue()


def synthetic_example(seed: int, split: str, index: int, image_size: int) -> tuple[str, dict]:
    """(key, example) of one rendered face."""
    params = synthetic_faces.sample_params(example_rng(seed, split, index), image_size)
    face = synthetic_faces.render(params)
    image_id = f"{split}/{index:05d}"
    return image_id, common.make_example(
        encode_png(face.image),
        face.landmarks,
        image_id,
        bbox=face.bbox,
        yaw=np.float32(params.yaw),
        roll=np.float32(params.roll),
        mouth_open=np.float32(params.mouth_open),
        occluded=face.occluded,
    )


# Below this many examples, starting worker processes costs more than rendering on one core.
PARALLEL_FROM = 256


def rendered_examples(seed: int, split: str, count: int, image_size: int, workers: int):
    """synthetic_example for index 0..count-1, in order, rendered by `workers` processes."""
    render = functools.partial(synthetic_example, seed, split, image_size=image_size)
    if workers <= 1:
        yield from map(render, range(count))
        return
    # spawn: forking a process that runs TensorFlow's and JAX's threads can deadlock.
    context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)
    try:
        # Small chunks: a stopped build waits for the chunks already queued, no longer.
        yield from pool.map(render, range(count), chunksize=16)
    finally:
        pool.shutdown(cancel_futures=True)  # stopped early (a SIGTERM): drop the queued renders


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for the embedded synthetic faces."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        SyntheticFacesConfig(name="default", description="Train 5,000 / test 500 at 256x256."),
        SyntheticFacesConfig(
            name="tiny",
            description="Train 64 / test 16 at 256x256, for tests and quick runs.",
            num_train=64,
            num_test=16,
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "default"

    def _info(self) -> tfds.core.DatasetInfo:
        metadata = {
            "yaw": tfds.features.Scalar(np.float32, doc="Yaw-like turn, degrees."),
            "roll": tfds.features.Scalar(np.float32, doc="In-plane rotation, degrees."),
            "mouth_open": tfds.features.Scalar(np.float32, doc="0 closed .. 1 wide open."),
            "occluded": tfds.features.Tensor(shape=(NUM_LANDMARKS,), dtype=np.float32),
        }
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=common.features(NUM_LANDMARKS, metadata, image_format="png"),
            homepage="https://arxiv.org/abs/2111.02360",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config = self.builder_config
        counts = {"train": config.num_train, "test": config.num_test}
        return {split: self._generate_examples(split, counts[split]) for split in SPLITS}

    def _generate_examples(self, split: str, count: int):
        config = self.builder_config
        workers = (os.cpu_count() or 1) if count >= PARALLEL_FROM else 1
        yield from rendered_examples(config.seed, split, count, config.image_size, workers)
