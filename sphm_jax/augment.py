"""Device-side augmentation (§5.1): random affine views of a crop, colour jitter, and their points.

Everything here is a pure function of a PRNG key, jitted inside the train
step: the heavy per-pixel work stays on the accelerator.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from sphm_jax import geometry


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """The paper's ranges: rotation +-30 deg, scale 0.85-1.15, flips, colour 0.6-1.4."""

    rotation: float = 30.0
    scale: tuple[float, float] = (0.85, 1.15)
    translation: float = 0.05  # fraction of the crop side
    flip: bool = True
    colour: tuple[float, float] = (0.6, 1.4)

    @classmethod
    def from_config(cls, a) -> AugmentConfig:
        """From a config's `augment` fields (hashable: tuples, not lists)."""
        return cls(
            float(a.rotation), tuple(a.scale), float(a.translation), bool(a.flip), tuple(a.colour)
        )


def random_transform(key, size: int, cfg: AugmentConfig):
    """One random view of a size x size crop: (affine float[2, 3], flipped bool).

    Flip first, then scale and rotate about the crop centre, then translate.
    """
    k_flip, k_rot, k_scale, k_shift = jax.random.split(key, 4)
    centre = jnp.full((2,), (size - 1) / 2.0)
    flipped = jax.random.bernoulli(k_flip) & cfg.flip
    angle = jax.random.uniform(k_rot, (), minval=-cfg.rotation, maxval=cfg.rotation)
    scale = jax.random.uniform(k_scale, (), minval=cfg.scale[0], maxval=cfg.scale[1])
    shift = jax.random.uniform(k_shift, (2,), minval=-1.0, maxval=1.0) * cfg.translation * size
    flip = jnp.where(flipped, geometry.hflip(size), geometry.identity())
    matrix = geometry.compose(
        flip,
        geometry.scale(scale, center=centre),
        geometry.rotation(angle, centre),
        geometry.translation(shift[0], shift[1]),
    )
    return matrix, flipped


def jitter_colour(key, image, cfg: AugmentConfig):
    """Scales each channel of an image in [0, 1] by its own factor in cfg.colour."""
    factor = jax.random.uniform(key, (image.shape[-1],), minval=cfg.colour[0], maxval=cfg.colour[1])
    return jnp.clip(image * factor, 0.0, 1.0)


def permute_if(flipped, values, flip_permutation, axis):
    """values with `axis` reordered by the flip permutation where `flipped` (per example)."""
    permuted = jnp.take(values, jnp.asarray(flip_permutation), axis=axis)
    shape = flipped.shape + (1,) * (values.ndim - flipped.ndim)
    return jnp.where(flipped.reshape(shape), permuted, values)


class Views(NamedTuple):
    """Random views T(X) of a batch, their points, and the T that made them."""

    images: jax.Array  # float[B, S, S, C]
    landmarks: jax.Array  # float[B, K, 2], view pixels, in the view's landmark order
    visible: jax.Array  # float[B, K], same order
    matrices: jax.Array  # float[B, 2, 3], crop -> view
    flipped: jax.Array  # bool[B]


def random_views(key, images, landmarks, visible, cfg: AugmentConfig, flip_permutation) -> Views:
    """Random views of a batch (Views).

    images float[B, S, S, C] in [0, 1]; landmarks float[B, K, 2] in crop
    pixels. Flipped views carry their points and visibility in the layout's
    mirrored order, so point k is always landmark k of the view.
    """
    size = images.shape[-2]
    k_geo, k_col = jax.random.split(key)
    b = images.shape[0]
    matrices, flipped = jax.vmap(lambda k: random_transform(k, size, cfg))(
        jax.random.split(k_geo, b)
    )
    views = geometry.warp_affine(images, matrices, (size, size))
    views = jax.vmap(lambda k, v: jitter_colour(k, v, cfg))(jax.random.split(k_col, b), views)
    points = geometry.transform_points(landmarks, matrices)
    points = permute_if(flipped, points, flip_permutation, axis=-2)
    visible = permute_if(flipped, visible, flip_permutation, axis=-1)
    return Views(views, points, visible, matrices, flipped)
