"""Tests for sphm_jax.toolkit.plots: figures are written, sized and drawn on."""

import numpy as np
from PIL import Image

from sphm_jax.toolkit import plots


def _png(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_draw_landmarks_marks_the_points_and_box_only():
    image = np.zeros((50, 60, 3), np.uint8)
    drawn = plots.draw_landmarks(image, [[5, 5, 40, 45]], [[[20.0, 30.0], [np.nan, 1.0]]])
    assert tuple(drawn[30, 20]) == plots.PRED_COLOUR
    assert drawn[5, 20].max() > 0  # the box's top edge
    assert drawn[25:28, 50:58].max() == 0  # elsewhere untouched
    assert image.max() == 0  # the input is not modified


def test_ced_figure_several_curves(tmp_path):
    rng = np.random.default_rng(0)
    curves = {"a": rng.uniform(0, 0.1, 50), "b": rng.uniform(0, 0.05, 50)}
    plots.ced_figure(curves, 0.08, tmp_path / "ced.png", "test")
    pixels = _png(tmp_path / "ced.png")
    assert pixels.shape[0] > 200 and pixels.std() > 5


def test_prediction_grid_and_heatmaps(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    points = rng.uniform(0, 31, (3, 5, 2))
    plots.prediction_grid(images, points, points + 1, ["a", "b", "c"], tmp_path / "g.png", 2)
    assert _png(tmp_path / "g.png").std() > 5
    hm = rng.uniform(size=(8, 8, 5)).astype(np.float32)
    plots.heatmap_figure(images[0], hm, points[0] / 4, tmp_path / "h.png", channels=(0, 4))
    assert _png(tmp_path / "h.png").shape[1] > 600  # four panels side by side
