"""Tests for sphm_jax.heatmaps: the paper's codec, its baselines and their parity with the PyTorch side."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sphm_jax import heatmaps

SHAPE = (64, 64)
# One compilation per shape and method: op by op, each op of each new shape compiles on its own.
_jit_decode = jax.jit(heatmaps.decode, static_argnames=("method", "window"))


def random_points(seed, n, k, lo=8.0, hi=56.0):
    return np.random.default_rng(seed).uniform(lo, hi, (n, k, 2)).astype(np.float32)


def max_error(method, points, sigma, quantize=None, shape=SHAPE):
    hm = heatmaps.encode(points, shape, sigma, quantize)
    return float(jnp.max(jnp.abs(heatmaps.decode(hm, method) - points)))


# --- encode ---------------------------------------------------------------------------------


def test_encode_is_an_unnormalised_gaussian_with_peak_one_at_the_point():
    hm = heatmaps.encode(np.array([[10.0, 20.0], [3.5, 7.25]]), (32, 40), 2.0)
    assert hm.shape == (32, 40, 2) and hm.dtype == jnp.float32
    assert float(hm[20, 10, 0]) == 1.0  # row y, column x
    assert float(hm[22, 13, 0]) == pytest.approx(np.exp(-(9 + 4) / 8.0), rel=1e-6)
    # A sub-pixel centre: no sample reaches 1, the value at (x=4, y=7) follows Eq. 3.
    assert float(hm[..., 1].max()) < 1.0
    assert float(hm[7, 4, 1]) == pytest.approx(np.exp(-(0.25 + 0.0625) / 8.0), rel=1e-6)


def test_encode_quantize_moves_the_centre_to_the_rounded_or_floored_point():
    p = np.array([[[10.6, 20.3]]], np.float32)
    for quantize, centre in (("round", (11, 20)), ("floor", (10, 20))):
        hm = heatmaps.encode(p, SHAPE, 1.5, quantize)[0]
        assert float(hm[centre[1], centre[0], 0]) == 1.0


def test_encode_any_leading_batch_dims():
    p = random_points(0, 6, 3).reshape(2, 3, 3, 2)
    hm = heatmaps.encode(p, (16, 24), 1.0)
    assert hm.shape == (2, 3, 16, 24, 3)
    np.testing.assert_array_equal(hm[1, 2], heatmaps.encode(p[1, 2], (16, 24), 1.0))


def test_encode_rejects_bad_input_with_clear_errors():
    with pytest.raises(ValueError, match=r"\[\.\.\., K, 2\]"):
        heatmaps.encode(np.zeros((5, 3)), SHAPE, 2.0)
    with pytest.raises(ValueError, match="non-finite"):
        heatmaps.encode(np.array([[1.0, np.nan]]), SHAPE, 2.0)
    with pytest.raises(ValueError, match="sigma"):
        heatmaps.encode(np.zeros((1, 2)), SHAPE, 0.0)
    with pytest.raises(ValueError, match="quantize"):
        heatmaps.encode(np.zeros((1, 2)), SHAPE, 1.0, quantize="ceil")
    with pytest.raises(ValueError, match="shape"):
        heatmaps.encode(np.zeros((1, 2)), (64,), 1.0)


def test_encode_under_jit_draws_nothing_for_a_non_finite_point():
    hm = jax.jit(lambda p: heatmaps.encode(p, (8, 8), 1.0))(jnp.array([[2.0, jnp.nan], [3.0, 3.0]]))
    assert float(jnp.abs(hm[..., 0]).max()) == 0.0 and float(hm[3, 3, 1]) == 1.0


# --- encode -> decode ------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [1.5, 2.0, 3.0])
def test_dark_returns_sub_pixel_points_within_1e_3(sigma):
    assert max_error("dark", random_points(1, 64, 68), sigma) < 1e-3


def test_local_softargmax_returns_sub_pixel_points_within_0_02_at_sigma_2():
    assert max_error("local_softargmax", random_points(2, 64, 68), 2.0) < 0.02


def test_quantized_baseline_is_off_by_up_to_half_a_pixel():
    points = random_points(3, 64, 68)
    err = np.abs(
        np.asarray(heatmaps.decode(heatmaps.encode(points, SHAPE, 2.0, "round"), "argmax_quarter"))
        - points
    )
    # Rounding is all that is left: the exact Gaussian has equal neighbours, so +-0.25 never fires.
    np.testing.assert_allclose(err, np.abs(points - np.round(points)), atol=1e-5)
    assert 0.49 < err.max() <= 0.5 and err.mean() > 0.2
    assert err.mean() > 20 * max_error("local_softargmax", points, 2.0) / 2


def test_argmax_returns_the_first_maximum_in_row_major_order():
    hm = np.zeros((5, 6, 1), np.float32)
    hm[3, 1, 0] = hm[3, 4, 0] = hm[4, 0, 0] = 2.0
    np.testing.assert_array_equal(heatmaps.decode(hm, "argmax"), [[1.0, 3.0]])


def test_local_softargmax_window_does_not_wrap_or_leave_the_map():
    hm = np.zeros((16, 16, 2), np.float32)
    hm[0, 0, 0] = 1.0
    hm[15, 15, 0] = hm[0, 15, 0] = hm[15, 0, 0] = 0.99  # a wrapped window would be pulled by these
    hm[15, 15, 1] = 1.0
    out = np.asarray(heatmaps.decode(hm, "local_softargmax"))
    assert np.all(out[0] >= 0.0) and np.all(out[0] < 0.1)
    assert np.all(out[1] <= 15.0) and np.all(out[1] > 14.9)


def test_local_softargmax_is_accurate_at_the_border():
    points = random_points(4, 16, 8, lo=0.0, hi=1.0)
    # Half the window is cut off here; the estimate stays within the map and near the point.
    hm = heatmaps.encode(points, SHAPE, 2.0)
    out = np.asarray(heatmaps.decode(hm))
    assert out.min() >= 0.0 and np.abs(out - points).max() < 0.3


def test_decode_nan_map_gives_nan_not_a_pixel():
    hm = np.array(heatmaps.encode(random_points(5, 1, 2), SHAPE, 2.0))
    hm[0, 5, 5, 1] = np.nan
    for method in ("argmax", "argmax_quarter", "local_softargmax", "dark", "global_softargmax"):
        out = np.asarray(_jit_decode(hm, method))
        assert np.all(np.isfinite(out[0, 0])) and np.all(np.isnan(out[0, 1])), method


def test_decode_rejects_bad_input_with_clear_errors():
    hm = np.zeros((8, 8, 2), np.float32)
    with pytest.raises(ValueError, match="unknown decode method"):
        heatmaps.decode(hm, "soft")
    with pytest.raises(ValueError, match="odd"):
        heatmaps.decode(hm, window=4)
    with pytest.raises(ValueError, match="larger than the 8x8"):
        heatmaps.decode(hm, window=9)
    with pytest.raises(ValueError, match="temperature"):
        heatmaps.decode(hm, temperature=-1.0)
    with pytest.raises(ValueError, match=r"\[\.\.\., H, W, K\]"):
        heatmaps.decode(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="floating"):
        heatmaps.decode(np.zeros((8, 8, 1), np.int32))


def test_local_softargmax_is_differentiable_in_the_heatmap():
    hm = heatmaps.encode(random_points(6, 2, 3), SHAPE, 2.0)
    loss = jax.jit(lambda h: jnp.sum(heatmaps.decode(h, "local_softargmax") ** 2))
    grad = jax.jit(jax.grad(loss))(hm)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0
    # The directional derivative agrees with central finite differences.
    direction = jax.random.normal(jax.random.key(0), hm.shape) * 1e-2
    eps = 1e-2
    fd = (loss(hm + eps * direction) - loss(hm - eps * direction)) / (2 * eps)
    assert float(jnp.vdot(grad, direction)) == pytest.approx(float(fd), rel=2e-2)


def test_decode_is_jittable_and_vmappable():
    hm = heatmaps.encode(random_points(7, 6, 4).reshape(2, 3, 4, 2), (32, 32), 2.0)
    # Op by op once (the paper's decoder): each method's eager run costs a compilation per op.
    np.testing.assert_allclose(heatmaps.decode(hm), _jit_decode(hm, "local_softargmax"), atol=1e-5)
    for method in heatmaps.METHODS:
        jitted = _jit_decode(hm, method)
        mapped = jax.jit(jax.vmap(functools.partial(heatmaps.decode, method=method)))(hm)
        np.testing.assert_allclose(jitted, mapped, atol=1e-5)
        assert jitted.shape == (2, 3, 4, 2)


# --- parity with the PyTorch side ---------------------------------------------------------------


def test_argmax_quarter_matches_face_alignment_up_to_its_half_pixel_offset():
    from face_alignment.utils import get_preds_fromhm

    rng = np.random.default_rng(8)
    hm = rng.uniform(size=(4, 64, 64, 68)).astype(np.float32)
    hm[0, 0, 7, 0] = 5.0  # peaks on the border, where both skip the correction
    hm[1, 30, 63, 1] = 5.0
    fa_preds, _, _ = get_preds_fromhm(np.ascontiguousarray(hm.transpose(0, 3, 1, 2)))
    # face-alignment adds 1 (1-based), moves +-0.25, subtracts 0.5: it reads 0.5 px more than we do.
    np.testing.assert_allclose(heatmaps.decode(hm, "argmax_quarter"), fa_preds - 0.5, atol=1e-6)


def test_local_softargmax_matches_kornia_conv_soft_argmax2d_at_the_maximum():
    import kornia
    import torch

    rng = np.random.default_rng(9)
    hm = rng.uniform(size=(3, 16, 20, 5)).astype(np.float32)
    hm[0, 0, 0, 0] = hm[1, 15, 19, 1] = hm[2, 1, 10, 2] = 2.0  # corners and an edge
    t = torch.from_numpy(hm).permute(0, 3, 1, 2)
    # kornia 0.9 divides by its temperature, so tau = 10 is 0.1 there; its padding takes no weight.
    coords = kornia.geometry.subpix.conv_soft_argmax2d(
        t, (5, 5), (1, 1), (2, 2), temperature=0.1, normalized_coordinates=False
    ).numpy()
    flat = hm.reshape(3, -1, 5).argmax(1)
    ys, xs = flat // 20, flat % 20
    b, k = np.meshgrid(np.arange(3), np.arange(5), indexing="ij")
    expected = coords[b, k, :, ys, xs]  # [3, 5, 2] as (x, y)
    np.testing.assert_allclose(heatmaps.decode(hm, "local_softargmax"), expected, atol=1e-5)


# --- properties -------------------------------------------------------------------------------


PROPERTY_METHODS = ("argmax", "argmax_quarter", "local_softargmax", "dark")


@functools.partial(jax.jit, static_argnums=(1, 2))
def _encode_decode_all(points, shape, dtype):
    """The maps of `points` in `dtype` and every method's decoding: one compilation per example."""
    hm = heatmaps.encode(points, shape, 1.5).astype(dtype)
    return hm, {m: heatmaps.decode(hm, m) for m in PROPERTY_METHODS}


@settings(max_examples=20, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    height=st.integers(5, 24),
    width=st.integers(5, 24),
    k=st.integers(1, 4),
    dtype=st.sampled_from([jnp.float32, jnp.float16, jnp.bfloat16]),
    seed=st.integers(0, 2**16),
)
def test_decoders_stay_inside_the_map_for_any_shape_dtype_and_point(
    batch, height, width, k, dtype, seed
):
    rng = np.random.default_rng(seed)
    points = np.stack(
        [rng.uniform(0, width - 1, (*batch, k)), rng.uniform(0, height - 1, (*batch, k))], -1
    ).astype(np.float32)
    hm, outs = _encode_decode_all(points, (height, width), dtype)
    assert hm.shape == (*batch, height, width, k) and hm.dtype == dtype
    for method in PROPERTY_METHODS:
        out = np.asarray(outs[method])
        assert out.shape == (*batch, k, 2) and out.dtype == np.float32
        assert (
            np.all(out >= 0)
            and np.all(out[..., 0] <= width - 1)
            and np.all(out[..., 1] <= height - 1)
        )
        if method in ("argmax", "argmax_quarter", "local_softargmax"):
            # Low-precision maps can tie or swap the top two pixels: within one pixel in every dtype.
            assert (
                np.abs(out - points).max()
                <= (0.5 if dtype == jnp.float32 and method != "local_softargmax" else 1.0) + 1e-4
            )


@settings(max_examples=25, deadline=None)
@given(x=st.floats(6.0, 57.0), y=st.floats(6.0, 57.0), sigma=st.sampled_from([1.5, 2.0, 2.5]))
def test_dark_inverts_encode_anywhere_in_the_interior(x, y, sigma):
    point = np.array([[x, y]], np.float32)
    assert (
        np.abs(
            np.asarray(heatmaps.decode(heatmaps.encode(point, SHAPE, sigma), "dark")) - point
        ).max()
        < 1e-3
    )
