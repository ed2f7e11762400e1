"""Tests for sphm_jax.data.input_pipeline on a tiny builder made here: images with a bright dot per landmark."""

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from sphm_jax import geometry
from sphm_jax.data import input_pipeline
from tfds_builders import common

NUM_EXAMPLES = 13
K = 19


def dot_image(points, size_hw, sigma=3.0):
    """uint8 grey image with a Gaussian dot (peak 250) at each point."""
    h, w = size_hw
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w))
    for x, y in points:
        img = np.maximum(img, 250.0 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)))
    return np.repeat(np.round(img).astype(np.uint8)[..., None], 3, -1)


def example_points(index):
    rng = np.random.default_rng(index)
    size = (int(rng.integers(120, 400)), int(rng.integers(120, 400)))
    center = np.array([size[1], size[0]]) * rng.uniform(0.4, 0.6, 2)
    radius = 0.35 * min(size)
    # Two dots far apart, the rest spread inside the face box.
    points = center + rng.uniform(-radius, radius, (K, 2))
    return size, points


class DotFaces(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            features=common.features(K, {"index": tfds.features.Scalar(np.int32)}, "png")
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(), "test": self._generate_examples()}

    def _generate_examples(self):
        for i in range(NUM_EXAMPLES):
            size, points = example_points(i)
            # Only the first three points are drawn, so the dots stay apart.
            image = dot_image(points[:3], size)
            yield str(i), common.make_example(image, points, f"img{i}", index=i)


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    b = DotFaces(data_dir=str(tmp_path_factory.mktemp("tfds")))
    b.download_and_prepare()
    return b


def test_crop_puts_the_image_where_the_matrix_puts_the_points(builder):
    (batch,) = list(
        input_pipeline.eval_batches(builder, "test", global_batch_size=16, image_size=128)
    )
    assert batch["image"].shape == (16, 128, 128, 3) and batch["image"].dtype == np.uint8
    checked = 0
    for i in range(NUM_EXAMPLES):
        img = batch["image"][i, ..., 0].astype(np.float64)
        x, y = batch["landmarks"][i, 0]
        # The dot's intensity-weighted centroid near the transformed point is the point.
        ys, xs = np.mgrid[0:128, 0:128]
        near = ((xs - x) ** 2 + (ys - y) ** 2 < 3.0**2) & (img > 0)
        if near.sum() < 5 or not (8 < x < 120 and 8 < y < 120):
            continue
        win = img * (((xs - x) ** 2 + (ys - y) ** 2) < 6.0**2)
        cx, cy = (win * xs).sum() / win.sum(), (win * ys).sum() / win.sum()
        assert abs(cx - x) < 0.2 and abs(cy - y) < 0.2, (i, cx, cy, x, y)
        checked += 1
    assert checked >= NUM_EXAMPLES // 2


def test_crop_then_map_back_returns_the_original_landmarks(builder):
    (batch,) = list(
        input_pipeline.eval_batches(builder, "test", global_batch_size=16, image_size=256)
    )
    for i in range(NUM_EXAMPLES):
        m = np.vstack([batch["crop"][i], [0.0, 0.0, 1.0]]).astype(np.float64)
        back = (np.linalg.inv(m)[:2, :2] @ batch["landmarks"][i].T).T + np.linalg.inv(m)[:2, 2]
        np.testing.assert_allclose(back, example_points(int(batch["index"][i]))[1], atol=1e-4)
    # The face box fills 220 of the 256 px along its longer side.
    lm = batch["landmarks"][:NUM_EXAMPLES]
    extent = (lm.max(1) - lm.min(1)).max(-1)
    np.testing.assert_allclose(extent, 220.0, rtol=1e-4)


@pytest.mark.parametrize("processes", [1, 2, 3, 5])
def test_eval_scores_every_example_once_on_any_process_count(builder, monkeypatch, processes):
    seen, steps = [], set()
    for p in range(processes):
        monkeypatch.setattr(jax, "process_count", lambda: processes)
        monkeypatch.setattr(jax, "process_index", lambda p=p: p)
        batches = list(
            input_pipeline.eval_batches(
                builder, "test", global_batch_size=2 * processes, image_size=32
            )
        )
        steps.add(len(batches))
        for b in batches:
            assert b["image"].shape[0] == 2
            seen += [int(i) for i, m in zip(b["index"], b["mask"]) if m > 0]
            assert all(i == b"" for i, m in zip(b["image_id"], b["mask"]) if m == 0)
    assert len(steps) == 1  # every process runs the same number of steps
    assert sorted(seen) == list(range(NUM_EXAMPLES))


def test_train_order_depends_only_on_seed_and_resumes_exactly(builder):
    def take(seed, start, n):
        it = input_pipeline.train_batches(
            builder,
            "train",
            global_batch_size=4,
            image_size=32,
            seed=seed,
            start_step=start,
        )
        return [next(it)["index"].tolist() for _ in range(n)]

    run = take(0, 0, 7)  # 3 steps per epoch: crosses two epoch boundaries
    assert take(0, 0, 7) == run
    assert take(0, 4, 3) == run[4:]
    assert take(1, 0, 7) != run
    epoch0 = sorted(sum(run[:3], []))
    assert len(set(epoch0)) == 12  # no repeats inside an epoch
    assert run[:3] != run[3:6]  # each epoch is reshuffled


def test_batch_size_must_divide_over_processes(builder, monkeypatch):
    monkeypatch.setattr(jax, "process_count", lambda: 3)
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        input_pipeline.eval_batches(builder, "test", global_batch_size=4, image_size=32)


def test_global_training_batches_do_not_depend_on_the_process_count(builder, monkeypatch):
    def local_batches(processes, index):
        monkeypatch.setattr(jax, "process_count", lambda: processes)
        monkeypatch.setattr(jax, "process_index", lambda: index)
        it = input_pipeline.train_batches(
            builder, "train", global_batch_size=4, image_size=32, seed=5
        )
        return [next(it)["index"].tolist() for _ in range(4)]

    single = local_batches(1, 0)
    halves = [local_batches(2, i) for i in range(2)]
    assert [a + b for a, b in zip(*halves)] == single


def test_training_crops_are_made_once_and_equal_the_evaluation_crops(builder, monkeypatch):
    made = []
    crop_arrays = input_pipeline.crop_arrays

    def counting(*args, **kwargs):
        made.append(args)
        return crop_arrays(*args, **kwargs)

    monkeypatch.setattr(input_pipeline, "crop_arrays", counting)
    it = input_pipeline.train_batches(builder, "train", global_batch_size=4, image_size=32, seed=0)
    batches = [next(it) for _ in range(10)]  # three epochs and a bit
    assert len(made) == 1
    evaluated = input_pipeline.eval_batches(builder, "train", global_batch_size=16, image_size=32)
    evaluated = next(evaluated)
    by_index = {int(i): n for n, i in enumerate(evaluated["index"]) if evaluated["mask"][n] > 0}
    for b in batches:
        for n, i in enumerate(b["index"]):
            for key in ("image", "landmarks", "visible", "crop"):
                np.testing.assert_array_equal(b[key][n], evaluated[key][by_index[int(i)]])


def test_epoch_order_is_a_full_permutation_of_seed_and_epoch():
    a = input_pipeline.epoch_order(3, 1, 1000)
    assert sorted(a.tolist()) == list(range(1000))
    np.testing.assert_array_equal(a, input_pipeline.epoch_order(3, 1, 1000))
    assert not np.array_equal(a, input_pipeline.epoch_order(3, 2, 1000))
    assert not np.array_equal(a, input_pipeline.epoch_order(4, 1, 1000))


@pytest.mark.parametrize("crop_scale", [1.0, 256.0 / 220.0, 1.4])
def test_the_tf_crop_is_geometry_box_crop(crop_scale):
    boxes = np.random.default_rng(0).uniform(0, 300, (20, 4)).astype(np.float32)
    boxes[:, 2:] = boxes[:, :2] + np.random.default_rng(1).uniform(5, 200, (20, 2))
    for size in (64, 256):
        expected = np.asarray(geometry.box_crop(boxes, size, crop_scale))
        got = [
            input_pipeline.crop_matrix(*input_pipeline.box_square(b, crop_scale), float(size))
            for b in boxes
        ]
        np.testing.assert_allclose(np.stack(got), expected, rtol=1e-6, atol=1e-4)
