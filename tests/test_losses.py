"""Tests for sphm_jax.losses: Eq. 6's warp-back and merge, and the masked L2 loss."""

import jax
import jax.numpy as jnp
import numpy as np

from sphm_jax import augment, geometry, heatmaps, layouts, losses

LAYOUT = layouts.get_layout(68)
STRIDE = 4


def faces(n, size=128, seed=0):
    from sphm_jax.data import synthetic_faces

    landmarks, _ = synthetic_faces.sample_landmarks(seed, n, size, size)
    return landmarks


def encode_points(points, size=128):
    return heatmaps.encode(geometry.image_to_heatmap(points, STRIDE), (size // STRIDE,) * 2, 2.0)


def test_identity_views_merge_to_twice_the_heatmaps():
    hm = encode_points(faces(3))
    eye = geometry.identity((2, 3))
    merged = losses.siamese_heatmaps(
        hm, hm, eye, jnp.zeros((2, 3), bool), STRIDE, LAYOUT.flip_permutation
    )
    np.testing.assert_allclose(merged, 2.0 * hm, atol=1e-6)


def test_heatmap_matrix_moves_heatmap_points_like_image_points():
    m = geometry.compose(geometry.rotation(20.0, (63.5, 63.5)), geometry.translation(3.0, -2.0))
    p = np.random.default_rng(0).uniform(0, 128, (5, 2)).astype(np.float32)
    in_map = geometry.transform_points(
        geometry.image_to_heatmap(p, STRIDE), losses.heatmap_matrix(m, STRIDE)
    )
    np.testing.assert_allclose(
        in_map, geometry.image_to_heatmap(geometry.transform_points(p, m), STRIDE), atol=1e-4
    )


def test_equivariant_network_views_agree_after_warping_back_flips_included():
    landmarks = faces(8, seed=1)
    cfg = augment.AugmentConfig(rotation=30.0, translation=0.03)

    @jax.jit  # one compilation: op by op, each op compiles on its own
    def views_warped_back(landmarks):
        images = jnp.zeros((8, 128, 128, 3))
        views = [
            augment.random_views(
                k, images, landmarks, jnp.ones((8, 68)), cfg, LAYOUT.flip_permutation
            )
            for k in jax.random.split(jax.random.key(3), 2)
        ]
        # An exactly equivariant network: it outputs the targets of its own view.
        outputs = [encode_points(v[1]) for v in views]
        backs = [
            losses.warp_back(o, v[3], v[4], STRIDE, LAYOUT.flip_permutation)
            for o, v in zip(outputs, views)
        ]
        return views[0][4], backs, encode_points(landmarks)

    flipped, backs, target = views_warped_back(landmarks)
    assert bool(jnp.any(flipped)) and not bool(jnp.all(flipped))  # some views are flipped
    inner = (slice(None), slice(4, 28), slice(4, 28))
    for back in backs:
        # Values differ by bilinear error and the view's scale (its sigma-2 maps come back 0.85-1.15x wide).
        assert float(jnp.abs(back - target)[inner].max()) < 0.15
        decoded = heatmaps.decode(back, "local_softargmax")
        assert float(jnp.abs(decoded - geometry.image_to_heatmap(landmarks, STRIDE)).max()) < 0.1
    np.testing.assert_allclose(backs[0][inner], backs[1][inner], atol=0.25)


def test_masked_l2_ignores_invisible_landmarks():
    pred = jnp.zeros((2, 4, 4, 3))
    target = jnp.ones((2, 4, 4, 3)).at[..., 2].set(5.0)
    visible = jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    assert float(losses.masked_l2(pred, target, visible)) == 1.0
