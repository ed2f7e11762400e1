"""Tests for sphm_jax.augment: the random views of §5.1 move images and points together."""

import jax
import jax.numpy as jnp
import numpy as np

from sphm_jax import augment, geometry, layouts

LAYOUT = layouts.get_layout(68)


def test_random_transform_stays_in_the_paper_ranges():
    cfg = augment.AugmentConfig(translation=0.0)
    keys = jax.random.split(jax.random.key(0), 256)
    matrices, flipped = jax.vmap(lambda k: augment.random_transform(k, 64, cfg))(keys)
    linear = np.asarray(matrices[:, :, :2])
    scale = np.sqrt(np.abs(np.linalg.det(linear)))
    assert scale.min() >= 0.85 - 1e-5 and scale.max() <= 1.15 + 1e-5
    # The crop centre stays put without translation; flips mirror about it.
    centre = geometry.transform_points(jnp.full((256, 1, 2), 31.5), matrices)
    np.testing.assert_allclose(centre, 31.5, atol=1e-3)
    assert 0.3 < float(jnp.mean(flipped)) < 0.7
    assert np.all((np.linalg.det(linear) < 0) == np.asarray(flipped))
    angles = np.degrees(np.arctan2(np.abs(linear[:, 1, 0]), np.abs(linear[:, 0, 0])))
    assert angles.max() <= 30.0 + 1e-3 and angles.max() > 25.0


def test_random_views_move_points_with_the_image_and_reorder_flipped_ones():
    size, k = 64, 68
    rng = np.random.default_rng(0)
    points = rng.uniform(16, 48, (4, k, 2)).astype(np.float32)
    # One bright pixel per image at point 0, to follow where the warp sends it.
    images = np.zeros((4, size, size, 3), np.float32)
    xy = np.round(points[:, 0]).astype(int)
    points[:, 0] = xy
    images[np.arange(4), xy[:, 1], xy[:, 0]] = 1.0
    cfg = augment.AugmentConfig(colour=(1.0, 1.0))
    views, view_points, visible, matrices, flipped = augment.random_views(
        jax.random.key(1), images, points, jnp.ones((4, k)), cfg, LAYOUT.flip_permutation
    )
    moved = geometry.transform_points(points, matrices)
    for i in range(4):
        peak = np.unravel_index(np.argmax(views[i, ..., 0]), (size, size))
        assert np.hypot(peak[1] - moved[i, 0, 0], peak[0] - moved[i, 0, 1]) < 1.0
        expected = moved[i][np.asarray(LAYOUT.flip_permutation)] if flipped[i] else moved[i]
        np.testing.assert_allclose(view_points[i], expected, atol=1e-5)


def test_colour_jitter_scales_each_channel_within_range():
    image = jnp.full((8, 8, 3), 0.5)
    out = augment.jitter_colour(jax.random.key(2), image, augment.AugmentConfig())
    factors = np.asarray(out[0, 0]) / 0.5
    assert np.all(factors >= 0.6) and np.all(factors <= 1.4) and len(set(factors.round(5))) == 3
