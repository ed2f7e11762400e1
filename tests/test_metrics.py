"""Tests for sphm_jax.metrics on hand-computed cases."""

import jax
import numpy as np
import pytest

from sphm_jax import metrics


def face(k, left, right, eye_distance=10.0):
    """gt with the outer eye corners `eye_distance` apart and every other point at the origin."""
    gt = np.zeros((1, k, 2), np.float32)
    gt[0, left] = (0.0, 0.0)
    gt[0, right] = (eye_distance, 0.0)
    return gt


@pytest.mark.parametrize("k,left,right", [(68, 36, 45), (98, 60, 72), (29, 8, 9)])
def test_inter_ocular_uses_the_outer_eye_corners_of_each_layout(k, left, right):
    gt = face(k, left, right)
    pred = gt.copy()
    pred[0, 0, 0] += 3.0  # one point off by 3 px, eyes 10 px apart
    assert float(metrics.nme(pred, gt, "inter_ocular")[0]) == pytest.approx(3.0 / k / 10.0)


def test_eye_indices_override_the_layout_default():
    gt = np.array([[[0.0, 0.0], [4.0, 0.0], [0.0, 2.0]]], np.float32)
    pred = gt + np.array([0.0, 1.0], np.float32)
    assert float(metrics.nme(pred, gt, "inter_ocular", eye_indices=(0, 1))[0]) == pytest.approx(
        0.25
    )


def test_invisible_points_are_left_out_of_the_mean_even_when_nan():
    gt = np.array([[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]]], np.float32)
    pred = gt.copy()
    pred[0, 0] += (3.0, 4.0)  # error 5
    pred[0, 3] = np.nan
    visible = np.array([[1, 1, 1, 0]], np.float32)
    # box of the visible gt points: 10 x 10 -> sqrt(w h) = 10, diagonal = 10 sqrt 2.
    assert float(metrics.nme(pred, gt, "box", visible=visible)[0]) == pytest.approx(5.0 / 3 / 10.0)
    assert float(metrics.nme(pred, gt, "diagonal", visible=visible)[0]) == pytest.approx(
        5.0 / 3 / (10.0 * np.sqrt(2.0)), rel=1e-6
    )


def test_given_boxes_normalise_box_and_diagonal():
    gt = np.zeros((2, 3, 2), np.float32)
    pred = gt + np.array([0.0, 2.0], np.float32)
    boxes = np.array([[0, 0, 4, 16], [10, 10, 16, 18]], np.float32)
    np.testing.assert_allclose(
        metrics.nme(pred, gt, "box", boxes=boxes), [2.0 / 8.0, 2.0 / np.sqrt(48.0)]
    )
    np.testing.assert_allclose(
        metrics.nme(pred, gt, "diagonal", boxes=boxes),
        [2.0 / np.sqrt(272.0), 2.0 / 10.0],
        rtol=1e-6,
    )


def test_nme_errors_name_the_image():
    gt = np.random.default_rng(0).uniform(0, 50, (3, 68, 2)).astype(np.float32)
    gt[2, 45] = gt[2, 36]
    with pytest.raises(ValueError, match=r"zero or not finite for image\(s\) \[2\]"):
        metrics.nme(gt, gt, "inter_ocular")
    visible = np.ones((3, 68), np.float32)
    visible[1] = 0
    with pytest.raises(ValueError, match=r"no landmark is visible for image\(s\) \[1\]"):
        metrics.nme(gt[:2], gt[:2], "box", visible=visible[:2])
    pred = gt.copy()
    pred[0, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"not finite for image\(s\) \[0\]"):
        metrics.nme(pred[:2], gt[:2], "box")
    with pytest.raises(ValueError, match="does not match"):
        metrics.nme(gt[:, :67], gt, "box")
    with pytest.raises(ValueError, match="unknown norm"):
        metrics.nme(gt, gt, "ipn")
    with pytest.raises(ValueError, match="visible must have shape"):
        metrics.nme(gt, gt, "box", visible=np.ones((3, 5)))
    with pytest.raises(ValueError, match="boxes must have shape"):
        metrics.nme(gt, gt, "box", boxes=np.ones((3, 2)))


def test_nme_under_jit_gives_nan_for_a_bad_image_instead_of_raising():
    gt = np.random.default_rng(1).uniform(0, 50, (2, 68, 2)).astype(np.float32)
    gt[1, 45] = gt[1, 36]
    out = jax.jit(lambda p, g: metrics.nme(p, g, "inter_ocular"))(gt, gt)
    assert float(out[0]) == 0.0 and np.isnan(float(out[1]))


def test_auc_and_failure_rate_on_a_hand_computed_case():
    nmes = np.array([0.0, 0.05, 0.1, 0.2])
    # Each image adds max(0, 0.1 - nme): (0.1 + 0.05 + 0 + 0) / 4 / 0.1.
    assert float(metrics.auc(nmes, 0.1)) == pytest.approx(0.375)
    assert float(metrics.failure_rate(nmes, 0.1)) == pytest.approx(0.25)  # 0.1 is not above 0.1
    assert float(metrics.failure_rate(nmes, 0.08)) == pytest.approx(0.5)
    assert float(metrics.auc(np.zeros(3), 0.07)) == pytest.approx(1.0)
    assert float(metrics.auc(np.full(3, 0.5), 0.07)) == 0.0


def test_ced_curve_is_monotone_and_its_area_is_the_auc():
    nmes = np.random.default_rng(2).gamma(2.0, 0.02, 500)
    errors, fraction = metrics.ced(nmes, 0.1, num_points=5001)
    assert errors[0] == 0.0 and float(errors[-1]) == pytest.approx(0.1)
    assert np.all(np.diff(np.asarray(fraction)) >= 0)
    assert float(fraction[-1]) == pytest.approx(np.mean(nmes <= 0.1))
    area = np.trapezoid(np.asarray(fraction), np.asarray(errors)) / 0.1
    assert area == pytest.approx(float(metrics.auc(nmes, 0.1)), abs=1e-3)


def test_curve_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="non-empty 1-D"):
        metrics.auc(np.array([]), 0.1)
    with pytest.raises(ValueError, match="threshold must be positive"):
        metrics.failure_rate(np.array([0.1]), 0.0)
    with pytest.raises(ValueError, match=r"NME is NaN for image\(s\) \[1\]"):
        metrics.auc(np.array([0.1, np.nan]), 0.1)


def test_tight_box_uses_visible_points_only():
    pts = np.array([[[1.0, 2.0], [5.0, 9.0], [100.0, -50.0]]])
    np.testing.assert_allclose(
        metrics.tight_box(pts, np.array([[1, 1, 0]])), [[1.0, 2.0, 5.0, 9.0]]
    )
