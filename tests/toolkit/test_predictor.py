"""Tests for sphm_jax.toolkit.predictor: the flip test, batch sizes, settings from a workdir (the whole
command, and agreement with the evaluation step, are in tests/test_predict.py)."""

import json
import os

import numpy as np

from sphm_jax import geometry, layouts
from sphm_jax.toolkit import predictor
from tests.helpers import mirror_points


def _tiny_predictor(tiny_checkpoint, **kwargs):
    directory, config = tiny_checkpoint
    kwargs = {"image_size": config.image_size, "crop_scale": config.crop_scale, **kwargs}
    return predictor.Predictor.load(directory, **kwargs)


def test_flip_test_is_mirror_symmetric(tiny_checkpoint):
    flipping = _tiny_predictor(tiny_checkpoint, flip=True, crop_scale=1.0)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    points, _ = flipping(image)
    mirrored, _ = flipping(image[:, ::-1])
    expected = mirror_points(points[0], 64, layouts.get_layout(68).flip_permutation)
    np.testing.assert_allclose(mirrored[0], expected, atol=1e-3)


def test_any_batch_size_gives_the_same_landmarks(tiny_checkpoint):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 64, 64, 3), dtype=np.uint8)
    crops = np.tile(np.asarray(geometry.identity()), (7, 1, 1))
    results = [
        _tiny_predictor(tiny_checkpoint, batch_size=b).predict_crops(images, crops)
        for b in (1, 3, 8)
    ]
    for points, scores in results[1:]:
        np.testing.assert_allclose(points, results[0][0], atol=1e-4)
        np.testing.assert_allclose(scores, results[0][1], atol=1e-5)
    assert results[0][0].shape == (7, 68, 2) and results[0][1].shape == (7, 68)


def test_workdir_supplies_crop_and_decoder(tmp_path, tiny_checkpoint):
    directory, config = tiny_checkpoint
    workdir = tmp_path / "work"
    workdir.mkdir()
    os.symlink(directory, workdir / "checkpoints")
    (workdir / "config.json").write_text(
        json.dumps({"image_size": 64, "crop_scale": 1.5, "decoder": "argmax"})
    )
    loaded = predictor.Predictor.load(workdir)
    assert (loaded.image_size, loaded.crop_scale, loaded.decoder) == (64, 1.5, "argmax")
    assert predictor.Predictor.load(workdir, decoder="dark").decoder == "dark"
