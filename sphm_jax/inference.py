"""Landmarks from crops: network, optional flip test, decoders, back to original image pixels.

Pure and jit-able; the one path shared by training's eval_step, sphm_jax.predict
and sphm_jax.evaluate, so a prediction and an evaluation of the same crop agree.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from sphm_jax import geometry, heatmaps


def network_heatmaps(apply_fn: Callable, variables, images, flip_permutation=None) -> jax.Array:
    """The last stack's heatmaps of uint8 crops [N, S, S, 3]; with a permutation, the flip test.

    The flip test averages the maps of the crop and of its mirror image, the
    latter mirrored back and with left/right landmarks swapped. Mirroring the
    map is exact: x -> S-1-x in the crop is x -> W-1-x in the heatmap.
    """
    x = images.astype(jnp.float32) / 255.0
    hm = apply_fn(variables, x, train=False)[-1]
    if flip_permutation is None:
        return hm
    mirrored = apply_fn(variables, x[:, :, ::-1], train=False)[-1]
    return 0.5 * (hm + mirrored[:, :, ::-1][..., jnp.asarray(flip_permutation)])


def crop_landmarks(
    apply_fn: Callable,
    variables,
    images,
    *,
    decoders: Sequence[str] = ("local_softargmax",),
    window: int = 5,
    temperature: float = 10.0,
    flip_permutation=None,
) -> tuple[dict[str, jax.Array], jax.Array]:
    """({decoder: points float32[N, K, 2] in crop pixels}, peak scores float32[N, K]).

    The peak score is the heatmap's maximum (1 at a perfect Gaussian's centre).
    """
    hm = network_heatmaps(apply_fn, variables, images, flip_permutation)
    stride = images.shape[1] // hm.shape[1]
    points = {
        method: geometry.heatmap_to_image(heatmaps.decode(hm, method, window, temperature), stride)
        for method in decoders
    }
    return points, jnp.max(hm, axis=(1, 2))


def landmarks(apply_fn: Callable, variables, images, crops, **decoding) -> tuple[dict, jax.Array]:
    """crop_landmarks() mapped back to original image pixels.

    crops: float[N, 2, 3], the affines original image -> crop the images were cut with.
    decoding: crop_landmarks()'s keywords (decoders, window, temperature, flip_permutation).
    """
    points, scores = crop_landmarks(apply_fn, variables, images, **decoding)
    to_original = geometry.invert(crops)
    return {m: geometry.transform_points(p, to_original) for m, p in points.items()}, scores


@functools.lru_cache(maxsize=16)
def _jitted_landmarks(model, dp, decoders, window, temperature, flip_permutation):
    """One jitted function per architecture and decoding: models of one shape share a compile."""

    def run(variables, batch):
        points, scores = landmarks(
            model.apply,
            variables,
            batch["image"],
            batch["crop"],
            decoders=decoders,
            window=window,
            temperature=temperature,
            flip_permutation=flip_permutation,
        )
        return {**points, "scores": scores}

    return jax.jit(run, in_shardings=(dp.replicated, dp.data), out_shardings=dp.data)


def landmark_fn(
    model,
    variables,
    dp,
    *,
    decoders: Sequence[str] = ("local_softargmax",),
    window: int = 5,
    temperature: float = 10.0,
    flip_permutation=None,
) -> Callable[[dict], dict]:
    """batch {"image", "crop"} -> {decoder: points, "scores": peak scores}, jitted over `dp`.

    model: a FAN (hashable); its variables are replicated over the mesh once, batches are
    split along "data".
    """
    flip = None if flip_permutation is None else tuple(int(i) for i in flip_permutation)
    run = _jitted_landmarks(model, dp, tuple(decoders), int(window), float(temperature), flip)
    return functools.partial(run, jax.device_put(variables, dp.replicated))
