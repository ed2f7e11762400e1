"""Tests for sphm_jax.toolkit.smoothing: the One-Euro filter against its definition and on the test clip."""

import numpy as np
import pytest

from sphm_jax import metrics
from sphm_jax.data import synthetic_faces
from sphm_jax.toolkit import smoothing


def jitter(x):
    """Mean |second difference| over time of float[T, ...]."""
    return np.abs(np.diff(x, 2, axis=0)).mean()


def test_constant_input_and_the_first_sample_pass_unchanged_in_shape_and_dtype():
    rng = np.random.default_rng(0)
    still = np.broadcast_to(rng.uniform(0, 255, (68, 2)), (20, 68, 2)).astype(np.float32)
    out = smoothing.smooth(still, 25, beta=0.5)
    assert out.shape == (20, 68, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out, still)
    moving = rng.normal(0, 10, (7, 5, 2))
    out = smoothing.smooth(moving, 30)
    assert out.shape == moving.shape
    np.testing.assert_array_equal(out[0], moving[0])
    assert smoothing.smooth(np.arange(4), 25).dtype == np.float64


def test_with_beta_zero_it_is_the_first_order_low_pass_at_min_cutoff():
    x = np.random.default_rng(1).normal(0, 1, (30, 3, 2))
    fps, cutoff = 30.0, 2.0
    alpha = 1 / (1 + fps / (2 * np.pi * cutoff))  # 1 / (1 + tau / dt)
    expected = [x[0]]
    for sample in x[1:]:
        expected.append(expected[-1] + alpha * (sample - expected[-1]))
    out = smoothing.smooth(x, fps, min_cutoff=cutoff, beta=0.0, d_cutoff=7.0)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_the_step_follows_the_papers_equations_for_one_sample():
    state = smoothing.OneEuroState(np.array([1.0]), np.array([10.0]))
    dt = 0.04
    new, out = smoothing.one_euro_step(state, np.array([2.0]), dt, 1.0, 0.1, 2.0)
    a_d = 1 / (1 + 1 / (2 * np.pi * 2.0) / dt)
    dx_hat = 10.0 + a_d * ((2.0 - 1.0) / dt - 10.0)
    a = 1 / (1 + 1 / (2 * np.pi * (1.0 + 0.1 * abs(dx_hat))) / dt)
    np.testing.assert_allclose(new.dx_hat, [dx_hat])
    np.testing.assert_allclose(out, [1.0 + a * 1.0])
    np.testing.assert_array_equal(new.x_hat, out)


def test_on_a_noisy_ramp_it_cuts_jitter_and_beta_trades_jitter_for_lag():
    fps, speed = 25.0, 40.0  # px/s: 1.6 px per frame
    truth = speed * np.arange(200)[:, None, None] / fps * np.ones((1, 5, 2))
    noisy = truth + np.random.default_rng(2).normal(0, 1, truth.shape)
    lags, jitters = [], []
    for beta in (0.0, 0.05, 0.2, 1.0):
        out = smoothing.smooth(noisy, fps, beta=beta)
        lags.append(np.mean(truth[100:] - out[100:]))  # the steady lag, px
        jitters.append(jitter(out))
    assert jitters[0] < jitter(noisy) / 5 and jitters[1] < jitter(noisy) / 2
    assert jitters[2] < 0.7 * jitter(noisy)  # the defaults
    assert np.all(np.diff(lags) < 0) and np.all(np.diff(jitters) > 0)
    # beta 0: a first-order filter lags a ramp by speed * tau, tau = 1 / (2 pi 1 Hz).
    assert lags[0] == pytest.approx(speed / (2 * np.pi), rel=0.05)
    assert lags[3] < 0.05 * lags[0]


def test_the_defaults_on_the_test_clip_beat_the_raw_track_in_error_and_jitter():
    """1 px noise on faces ~110 px wide moving 2-3 px per frame: defaults vs beta 0.05."""
    rng = np.random.default_rng(3)
    raw, default, slow = [], [], []
    for seed in range(3):
        params = synthetic_faces.clip_params(seed, 100)
        units = [synthetic_faces.shape_landmarks(p) for p in params]
        truth = np.stack([synthetic_faces.project(u, p, u) for u, p in zip(units, params)])
        noisy = truth + rng.normal(0, 1, truth.shape)
        for out, outs in ((noisy, raw), (smoothing.smooth(noisy, 25), default)):
            err = np.linalg.norm(out - truth, axis=-1)[10:].mean()
            outs.append((err, float(np.mean(metrics.nmj(out[10:], truth[10:])))))
        slow.append(np.linalg.norm(smoothing.smooth(noisy, 25, beta=0.05) - truth, axis=-1).mean())
    (raw_err, raw_nmj), (err, nmj) = np.mean(raw, 0), np.mean(default, 0)
    assert err < raw_err and nmj < 0.75 * raw_nmj
    assert np.mean(slow) > 1.2 * raw_err  # too little beta: the lag outweighs the noise


def test_bad_parameters_are_value_errors_naming_the_value():
    x = np.zeros((3, 2))
    for kwargs, match in (
        ({"min_cutoff": 0.0}, "min_cutoff must be a positive frequency in Hz, got 0.0"),
        ({"d_cutoff": -1.0}, "d_cutoff must be a positive frequency in Hz, got -1.0"),
        ({"beta": -0.1}, "beta must be non-negative, got -0.1"),
    ):
        with pytest.raises(ValueError, match=match):
            smoothing.smooth(x, 25, **kwargs)
        with pytest.raises(ValueError, match=match):
            smoothing.one_euro_step(smoothing.one_euro_init(x[0]), x[1], 0.04, **kwargs)
    with pytest.raises(ValueError, match="fps must be positive, got 0"):
        smoothing.smooth(x, 0)
    with pytest.raises(ValueError, match="dt must be a positive time step in seconds, got -0.04"):
        smoothing.one_euro_step(smoothing.one_euro_init(x[0]), x[1], -0.04)
    with pytest.raises(ValueError, match=r"x has shape \(3,\), the filter's state \(2,\)"):
        smoothing.one_euro_step(smoothing.one_euro_init(x[0]), np.zeros(3), 0.04)
    with pytest.raises(TypeError):
        smoothing.smooth(x, 25, cutoff=1.0)  # not a parameter of the filter
