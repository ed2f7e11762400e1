"""Tests for sphm_jax.geometry: builders, warps against kornia, and points moving with images."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sphm_jax import geometry, heatmaps

# One compilation per shape: op by op, each new shape costs several times that.
_jit_warp_affine = jax.jit(geometry.warp_affine, static_argnums=2)


def random_affines(seed, n, size):
    rng = np.random.default_rng(seed)
    center = np.full((n, 2), (size - 1) / 2.0)
    return geometry.compose(
        geometry.rotation(rng.uniform(-30, 30, n), center),
        geometry.scale(rng.uniform(0.8, 1.25, n), rng.uniform(0.8, 1.25, n), center),
        geometry.translation(*rng.uniform(-3, 3, (2, n))),
    )


def smooth_image(size, channels=2):
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    planes = [np.sin(xs / 5.0) * np.cos(ys / 7.0), np.cos((xs + ys) / 9.0)]
    return np.stack(planes[:channels], -1)


# --- builders -------------------------------------------------------------------------------


def test_rotation_matches_opencv_convention_and_keeps_its_centre():
    m = geometry.rotation(90.0, (10.0, 5.0))
    # OpenCV: positive angles turn counter-clockwise on screen (y down): +x goes to -y.
    np.testing.assert_allclose(
        geometry.transform_points(np.array([[11.0, 5.0], [10.0, 5.0]]), m),
        [[10.0, 4.0], [10.0, 5.0]],
        atol=1e-5,
    )


def test_hflip_maps_pixel_centres_onto_pixel_centres():
    np.testing.assert_allclose(
        geometry.transform_points(np.array([[0.0, 3.0], [9.0, 1.0]]), geometry.hflip(10)),
        [[9.0, 3.0], [0.0, 1.0]],
    )
    twice = geometry.compose(geometry.hflip(10), geometry.hflip(10))
    np.testing.assert_allclose(twice, geometry.identity(), atol=1e-6)


def test_compose_applies_left_to_right_and_invert_undoes():
    t, s = geometry.translation(2.0, 0.0), geometry.scale(3.0)
    p = np.array([[1.0, 1.0]])
    np.testing.assert_allclose(geometry.transform_points(p, geometry.compose(t, s)), [[9.0, 3.0]])
    np.testing.assert_allclose(geometry.transform_points(p, geometry.compose(s, t)), [[5.0, 3.0]])
    m = random_affines(0, 5, 32)
    np.testing.assert_allclose(
        geometry.compose(m, geometry.invert(m)), geometry.identity((5,)), atol=1e-5
    )


def test_crop_maps_the_square_onto_the_output():
    m = geometry.crop((50.0, 40.0), 20.0, 256)
    corners = np.array([[40.0, 30.0], [60.0, 50.0], [50.0, 40.0]])
    # The square's edges go to the output's outer pixel edges (-0.5 and 255.5), its centre to the centre.
    np.testing.assert_allclose(
        geometry.transform_points(corners, m),
        [[-0.5, -0.5], [255.5, 255.5], [127.5, 127.5]],
        atol=1e-4,
    )


def test_image_heatmap_conversion_is_one_inverse_pair():
    # Image pixels 0..3 pool into heatmap pixel 0, whose centre is image x = 1.5.
    np.testing.assert_allclose(geometry.image_to_heatmap(np.array([[1.5, 5.5]]), 4), [[0.0, 1.0]])
    np.testing.assert_allclose(
        geometry.heatmap_to_image(np.array([[0.0, 63.0]]), 4), [[1.5, 253.5]]
    )
    p = np.random.default_rng(1).uniform(0, 256, (7, 2))
    np.testing.assert_allclose(
        geometry.heatmap_to_image(geometry.image_to_heatmap(p, 4), 4), p, atol=1e-4
    )


def test_builders_broadcast_over_batch_dims():
    m = geometry.rotation(np.zeros((2, 3)), np.zeros((2, 3, 2)))
    assert m.shape == (2, 3, 2, 3)
    pts = np.ones((2, 3, 5, 2))
    assert geometry.transform_points(pts, m).shape == (2, 3, 5, 2)


# --- warp_affine ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_warp_affine_matches_kornia_align_corners(seed):
    import kornia
    import torch

    rng = np.random.default_rng(seed)
    image = rng.normal(size=(4, 20, 24, 3)).astype(np.float32)
    matrix = np.asarray(random_affines(seed, 4, 20)) + rng.normal(0, 0.05, (4, 2, 3)).astype(
        np.float32
    )
    ours = geometry.warp_affine(image, matrix, (18, 26))
    theirs = kornia.geometry.transform.warp_affine(
        torch.from_numpy(image).permute(0, 3, 1, 2),
        torch.from_numpy(matrix),
        (18, 26),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )
    np.testing.assert_allclose(ours, theirs.permute(0, 2, 3, 1).numpy(), atol=1e-4)


def test_exact_warps_are_lossless_and_inverse_warps_restore_the_interior():
    image = np.random.default_rng(2).normal(size=(2, 16, 16, 3)).astype(np.float32)
    exact = geometry.compose(geometry.hflip(16), geometry.rotation(90.0, (7.5, 7.5)))
    back = _jit_warp_affine(
        _jit_warp_affine(image, exact, (16, 16)), geometry.invert(exact), (16, 16)
    )
    np.testing.assert_allclose(back, image, atol=1e-4)  # float32 cos(90 deg) is not exactly 0
    # A general warp resamples twice: on a smooth image only the bilinear error remains.
    smooth = smooth_image(48)[None].repeat(3, 0)
    m = random_affines(3, 3, 48)
    back = _jit_warp_affine(_jit_warp_affine(smooth, m, (48, 48)), geometry.invert(m), (48, 48))
    np.testing.assert_allclose(back[:, 12:36, 12:36], smooth[:, 12:36, 12:36], atol=0.02)


def test_points_and_heatmaps_move_together():
    rng = np.random.default_rng(4)
    points = rng.uniform(20, 44, (3, 5, 2)).astype(np.float32)
    m = random_affines(4, 3, 64)
    moved = geometry.transform_points(points, m)
    warped = _jit_warp_affine(heatmaps.encode(points, (64, 64), 2.0), m, (64, 64))
    direct = heatmaps.encode(moved, (64, 64), 2.0)
    # Bilinear error of a sigma-2 Gaussian: below max|f''| / 8 * 2 ~ 0.06, plus the scale's reshaping.
    assert float(jnp.abs(warped - direct).max()) < 0.25 * 1.25
    decoded = heatmaps.decode(
        warped / jnp.max(warped, axis=(-3, -2), keepdims=True), "local_softargmax"
    )
    np.testing.assert_allclose(decoded, moved, atol=0.15)


def test_warp_affine_is_differentiable_in_image_and_matrix():
    image = smooth_image(24, 1)[None]
    m = random_affines(5, 1, 24)
    loss = jax.jit(lambda img, mat: jnp.sum(geometry.warp_affine(img, mat, (20, 20)) ** 2))
    g_img, g_mat = jax.jit(jax.grad(loss, argnums=(0, 1)))(image, m)
    assert bool(jnp.all(jnp.isfinite(g_img))) and float(jnp.abs(g_img).max()) > 0
    eps = 1e-3
    for i, j in ((0, 0), (0, 2), (1, 1), (1, 2)):
        dm = jnp.zeros_like(m).at[0, i, j].set(eps)
        fd = (loss(image, m + dm) - loss(image, m - dm)) / (2 * eps)
        assert float(g_mat[0, i, j]) == pytest.approx(float(fd), rel=0.05, abs=0.05)


def test_warp_affine_shares_an_unbatched_matrix_and_checks_batch_dims():
    image = np.random.default_rng(6).normal(size=(2, 3, 8, 8, 1)).astype(np.float32)
    m = geometry.translation(1.0, 0.0)
    out = geometry.warp_affine(image, m, (8, 8))
    assert out.shape == (2, 3, 8, 8, 1)
    np.testing.assert_allclose(out[1, 2, :, 1:], image[1, 2, :, :-1], atol=1e-6)
    np.testing.assert_allclose(out[..., 0, :], 0.0)  # zeros outside
    with pytest.raises(ValueError, match="batch dims"):
        geometry.warp_affine(image, geometry.identity((5,)), (8, 8))
    with pytest.raises(ValueError, match=r"\[\.\.\., 2, 3\]"):
        geometry.warp_affine(image, np.eye(3), (8, 8))
    with pytest.raises(ValueError, match="out_shape"):
        geometry.warp_affine(image, m, (8, 0))


@settings(max_examples=15, deadline=None)
@given(
    batch=st.lists(st.integers(1, 2), max_size=2),
    h=st.integers(3, 12),
    w=st.integers(3, 12),
    c=st.integers(1, 3),
    tx=st.integers(-3, 3),
    ty=st.integers(-3, 3),
)
def test_integer_translation_shifts_any_shape_exactly(batch, h, w, c, tx, ty):
    image = np.random.default_rng(h * w + c).normal(size=(*batch, h, w, c)).astype(np.float32)
    out = np.asarray(_jit_warp_affine(image, geometry.translation(float(tx), float(ty)), (h, w)))
    expected = np.zeros_like(image)
    src = image[..., max(0, -ty) : h - max(0, ty), max(0, -tx) : w - max(0, tx), :]
    expected[
        ..., max(0, ty) : max(0, ty) + src.shape[-3], max(0, tx) : max(0, tx) + src.shape[-2], :
    ] = src
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_tight_box_uses_visible_points_only():
    pts = np.array([[[1.0, 2.0], [5.0, 9.0], [100.0, -50.0]]])
    np.testing.assert_allclose(
        geometry.tight_box(pts, np.array([[1, 1, 0]])), [[1.0, 2.0, 5.0, 9.0]]
    )


# ---------------------------------------------------------------------------
# Stability: nmj on a track, spread over views.
