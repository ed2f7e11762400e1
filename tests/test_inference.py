"""Tests for sphm_jax.inference: points come back in original pixels, the flip test is exact."""

import jax
import jax.numpy as jnp
import numpy as np

from sphm_jax import geometry, heatmaps, inference, layouts


def _peaked(points, size=16, k=68):
    """An apply_fn whose last stack is a Gaussian at `points` (heatmap px) for every image."""
    hm = heatmaps.encode(points, (size, size), 1.5)

    def apply_fn(variables, x, train=False):
        del variables, train
        return (jnp.zeros(()), jnp.broadcast_to(hm, (x.shape[0],) + hm.shape))

    return apply_fn


def test_points_are_mapped_back_through_the_crop():
    points = np.random.default_rng(0).uniform(3, 12, (68, 2)).astype(np.float32)
    crop = geometry.compose(geometry.scale(0.5), geometry.translation(-7.0, 3.0))
    images = jnp.zeros((2, 64, 64, 3), jnp.uint8)
    got, scores = inference.landmarks(
        _peaked(points),
        {},
        images,
        jnp.stack([crop, crop]),
        decoders=("local_softargmax", "argmax"),
    )
    back = geometry.invert(crop)  # crop px = 0.5 * original px + shift: 8 original px per map px
    for method in ("local_softargmax", "argmax"):
        decoded = heatmaps.decode(heatmaps.encode(points, (16, 16), 1.5), method)
        expected = geometry.transform_points(geometry.heatmap_to_image(decoded, 4), back)
        np.testing.assert_allclose(got[method][1], expected, atol=1e-4)
    truth = geometry.transform_points(geometry.heatmap_to_image(points, 4), back)
    assert np.abs(np.asarray(got["argmax"][0] - truth)).max() <= 0.5 * 8
    assert scores.shape == (2, 68) and np.all(np.asarray(scores) > 0.7)


def test_flip_test_of_a_symmetric_net_is_the_plain_result():
    # A net that ignores its input: the flip test averages the map with its own mirror, permuted.
    points = np.random.default_rng(1).uniform(3, 12, (68, 2)).astype(np.float32)
    perm = layouts.get_layout(68).flip_permutation
    apply_fn = _peaked(points)
    images = jnp.zeros((1, 64, 64, 3), jnp.uint8)
    hm = inference.network_heatmaps(apply_fn, {}, images, perm)
    plain = apply_fn({}, images)[-1]
    mirrored = plain[:, :, ::-1][..., np.asarray(perm)]
    np.testing.assert_allclose(hm, 0.5 * (plain + mirrored), atol=1e-7)
    assert jax.tree_util.tree_structure(hm) == jax.tree_util.tree_structure(plain)
