"""Tests for the synthetic_faces builder: a tiny build, determinism, the features' values."""

from __future__ import annotations

import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from sphm_jax.data import synthetic_faces
from tfds_builders.synthetic_faces import synthetic_faces_dataset_builder as builder


class TinyTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["tiny"]
    SPLITS = {"train": 64, "test": 16}
    SKIP_CHECKSUMS = True


def test_examples_are_deterministic_and_match_the_renderer():
    key, example = builder.synthetic_example(3, "test", 7, 128)
    again = builder.synthetic_example(3, "test", 7, 128)[1]
    assert key == example["image_id"] == "test/00007"
    assert example["image"] == again["image"]
    params = synthetic_faces.sample_params(builder.example_rng(3, "test", 7), 128)
    face = synthetic_faces.render(params)
    image = np.asarray(Image.open(io.BytesIO(example["image"])))
    np.testing.assert_array_equal(image, face.image)  # PNG is lossless
    np.testing.assert_array_equal(example["landmarks"], face.landmarks)
    np.testing.assert_array_equal(example["bbox"], [*face.landmarks.min(0), *face.landmarks.max(0)])
    assert example["visible"].tolist() == [1.0] * 68
    assert example["yaw"] == np.float32(params.yaw) and example["occluded"].shape == (68,)


def test_splits_and_indices_get_different_faces():
    a = builder.synthetic_example(0, "train", 0, 64)[1]["landmarks"]
    b = builder.synthetic_example(0, "test", 0, 64)[1]["landmarks"]
    c = builder.synthetic_example(0, "train", 1, 64)[1]["landmarks"]
    d = builder.synthetic_example(1, "train", 0, 64)[1]["landmarks"]
    assert not np.allclose(a, b) and not np.allclose(a, c) and not np.allclose(a, d)


if __name__ == "__main__":
    tfds.testing.test_main()


def test_rendering_on_several_processes_gives_the_same_examples_in_order():
    serial = list(builder.rendered_examples(0, "train", 6, 64, workers=1))
    parallel = list(builder.rendered_examples(0, "train", 6, 64, workers=2))
    keys = [f"train/{i:05d}" for i in range(6)]
    assert [k for k, _ in parallel] == [k for k, _ in serial] == keys
    for (_, a), (_, b) in zip(serial, parallel):
        assert a["image"] == b["image"]
        np.testing.assert_array_equal(a["landmarks"], b["landmarks"])
