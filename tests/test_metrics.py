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


def track(t=6, k=68, seed=0):
    """gt float[T, K, 2] of one moving face: random points, then a random walk of the whole."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0, 3, (t, 1, 2)), axis=0)
    return (rng.uniform(20, 120, (1, k, 2)) + walk).astype(np.float32)


def test_nmj_is_zero_for_a_constant_offset_and_counts_the_errors_change():
    gt = track()
    bias = np.random.default_rng(1).normal(0, 4, (1, 68, 2)).astype(np.float32)
    np.testing.assert_allclose(metrics.nmj(gt + bias, gt), np.zeros(5), atol=1e-6)
    # A jitter of the prediction alone does count.
    assert np.all(np.asarray(metrics.nmj(gt + bias + np.arange(6)[:, None, None] % 2, gt)) > 0)


def test_nmj_on_a_hand_computed_three_frame_track():
    gt = np.array([[[0, 0], [10, 0]], [[0, 0], [10, 0]], [[0, 0], [20, 0]]], np.float32)
    pred = gt.copy()
    pred[1, 0] += (3, 4)  # e_1 - e_0: 5 and 0 px -> RMS sqrt(12.5) px / 10
    pred[2, 0] += (3, 4)
    pred[2, 1] += (0, 2)  # e_2 - e_1: 0 and 2 px -> RMS sqrt(2) px / 20
    out = metrics.nmj(pred, gt, "inter_ocular", eye_indices=(0, 1))
    np.testing.assert_allclose(out, [np.sqrt(12.5) / 10, np.sqrt(2) / 20], rtol=1e-6)
    # Point 1 hidden in frame 2: only point 0 of the second transition is left, which kept still.
    visible = np.array([[1, 1], [1, 1], [1, 0]], np.float32)
    out = metrics.nmj(pred, gt, "inter_ocular", visible=visible, eye_indices=(0, 1))
    np.testing.assert_allclose(out[1], 0.0)
    # The default is LDEQ's face size, sqrt(w * h) of gt's tight box: (10 x 0 is degenerate, so
    # give the face some height).
    gt[:, 1, 1] = 10.0
    pred[:, 1, 1] += 10.0
    np.testing.assert_allclose(
        metrics.nmj(pred, gt), [np.sqrt(12.5) / 10, np.sqrt(2) / np.sqrt(200)], rtol=1e-6
    )


def test_nmj_ignores_motion_that_prediction_and_gt_share():
    gt = track(seed=2)
    pred = gt + np.random.default_rng(3).normal(0, 1, gt.shape).astype(np.float32)
    # The face moves as a whole (its size, the normaliser, stays).
    motion = np.random.default_rng(4).normal(0, 5, (gt.shape[0], 1, 2)).astype(np.float32)
    np.testing.assert_allclose(
        metrics.nmj(pred + motion, gt + motion), metrics.nmj(pred, gt), rtol=1e-4
    )


def test_nmj_rejects_a_single_frame_and_names_the_bad_transition():
    gt = track(t=3)
    with pytest.raises(ValueError, match="at least 2 frames"):
        metrics.nmj(gt[:1], gt[:1])
    visible = np.ones((3, 68), np.float32)
    visible[2] = 0
    with pytest.raises(ValueError, match=r"visible in both frames .* t = \[1\]"):
        metrics.nmj(gt, gt, "box", visible)


def test_spread_is_zero_when_the_views_agree_and_scales_with_deviations_and_normaliser():
    rng = np.random.default_rng(5)
    mean = rng.uniform(0, 100, (1, 3, 68, 2)).astype(np.float32)
    dev = rng.normal(0, 1, (4, 3, 68, 2)).astype(np.float32)
    dev -= dev.mean(0)  # mean stays the views' mean
    d = metrics.spread_normalizer(mean + dev)
    np.testing.assert_allclose(d, metrics.normalizer(mean[0], "inter_ocular"), rtol=1e-5)
    np.testing.assert_allclose(metrics.spread(np.repeat(mean, 4, 0), d), np.zeros(3), atol=1e-6)
    one = np.asarray(metrics.spread(mean + dev, d))
    assert np.all(one > 0)
    np.testing.assert_allclose(metrics.spread(mean + 2 * dev, d), 2 * one, rtol=1e-4)
    np.testing.assert_allclose(metrics.spread(mean + dev, 4 * np.asarray(d)), one / 4, rtol=1e-5)


def test_spread_on_a_hand_computed_example():
    # Three views of one face with two points: point 0 at x = 0, 0, 3 (mean 1, deviations
    # 1, 1, 2: RMS sqrt(2)), point 1 the same in every view; mean sqrt(2) / 2, over d = 2.
    points = np.zeros((3, 1, 2, 2), np.float32)
    points[2, 0, 0, 0] = 3
    points[:, 0, 1] = (5, 7)
    np.testing.assert_allclose(metrics.spread(points, [2.0]), [np.sqrt(2) / 4], rtol=1e-6)


def test_spread_checks_its_shapes_and_normaliser():
    points = np.zeros((2, 3, 5, 2), np.float32)
    with pytest.raises(ValueError, match=r"\[V, N, K, 2\] with V >= 2"):
        metrics.spread(points[:1], np.ones(3))
    with pytest.raises(ValueError, match=r"\[V, N, K, 2\]"):
        metrics.spread(points[0], np.ones(3))
    with pytest.raises(ValueError, match=r"normalizer must have shape \(3,\)"):
        metrics.spread(points, np.ones(2))
    with pytest.raises(ValueError, match=r"zero or not finite for face\(s\) \[1\]"):
        metrics.spread(points, [1.0, 0.0, 1.0])
