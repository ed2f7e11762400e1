"""The training losses: heatmap targets (Eq. 3) and the masked pixel-wise L2 of every stack (§5.1),
and the Siamese consistency loss (§3.4, Eq. 6): each view's heatmaps warped back and merged."""

from __future__ import annotations

import jax.numpy as jnp

from sphm_jax import augment, geometry, heatmaps


def heatmap_matrix(matrix, stride: int):
    """The image-pixel affine `matrix` expressed in heatmap pixels (stride `stride`)."""
    to_map = geometry.compose(
        geometry.scale(1.0 / stride), geometry.translation(*(0.5 / stride - 0.5,) * 2)
    )
    return geometry.compose(geometry.invert(to_map), matrix, to_map)


def warp_back(heatmaps, matrices, flipped, stride: int, flip_permutation):
    """T^-1 applied to the heatmaps of views T(X): back in X's frame and landmark order.

    heatmaps float[B, h, w, K] of the views; matrices float[B, 2, 3] (crop ->
    view, image pixels); flipped bool[B].
    """
    inverse = geometry.invert(heatmap_matrix(matrices, stride))
    back = geometry.warp_affine(heatmaps, inverse, heatmaps.shape[-3:-1])
    return augment.permute_if(flipped, back, flip_permutation, axis=-1)


def siamese_heatmaps(heatmaps_0, heatmaps_1, matrices, flipped, stride: int, flip_permutation):
    """Eq. 6: T0^-1(Phi(T0 X)) + T1^-1(Phi(T1 X)), the element-wise sum of the warped-back views.

    matrices float[2, B, 2, 3] and flipped bool[2, B] hold T0 and T1.
    """
    return warp_back(heatmaps_0, matrices[0], flipped[0], stride, flip_permutation) + warp_back(
        heatmaps_1, matrices[1], flipped[1], stride, flip_permutation
    )


def masked_l2(pred, target, visible):
    """Pixel-wise squared error, mean over pixels and the visible landmarks' channels."""
    weight = visible[..., None, None, :]
    sq = jnp.square(pred - target) * weight
    return jnp.sum(sq) / jnp.maximum(jnp.sum(weight) * pred.shape[-3] * pred.shape[-2], 1.0)


def target_heatmaps(points, stride: int, heatmap_size: int, sigma: float, quantize=None):
    """Eq. 3 (or the quantized baselines): the targets of crop-pixel points."""
    in_map = geometry.image_to_heatmap(points, stride)
    return heatmaps.encode(in_map, (heatmap_size,) * 2, sigma, quantize)


def siamese_loss(outputs, target, visible, matrices, flipped, stride: int, flip_permutation):
    """Eq. 6 on every stack: the mean of the two warped-back views against X's targets.

    outputs: per stack, the heatmaps of the views T0 X and T1 X concatenated on the batch.
    """
    loss = 0.0
    for out in outputs:
        view_0, view_1 = jnp.split(out, 2)
        merged = siamese_heatmaps(view_0, view_1, matrices, flipped, stride, flip_permutation)
        loss += masked_l2(0.5 * merged, target, visible)
    return loss
