"""Landmark metrics of the paper's appendix B: NME, the cumulative error curve, AUC, failure rate;
and two of stability: `nmj` on annotated video, `spread` over transformed views without labels.

NMEs are fractions (0.0372 means 3.72 %). Called on concrete arrays, bad
input (a zero normaliser, an image with no visible point, NaN) raises a
ValueError naming the image; under jit such an image gets NaN instead.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sphm_jax import geometry, layouts
from sphm_jax._validate import is_concrete

NORMS = ("inter_ocular", "box", "diagonal")


def _raise_for_images(bad, what: str, items: str = "image(s)") -> None:
    if is_concrete(bad) and bool(jnp.any(bad)):
        idx = np.flatnonzero(np.asarray(bad))
        raise ValueError(
            f"{what} for {items} {idx[:10].tolist()}"
            f"{' ...' if idx.size > 10 else ''} ({idx.size} in all)"
        )


def _check_landmarks(pred, gt, visible):
    pred, gt = jnp.asarray(pred, jnp.float32), jnp.asarray(gt, jnp.float32)
    if gt.ndim != 3 or gt.shape[-1] != 2:
        raise ValueError(f"gt must have shape [N, K, 2], got {gt.shape}")
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} does not match gt shape {gt.shape}")
    if visible is None:
        visible = jnp.ones(gt.shape[:2], jnp.float32)
    visible = jnp.asarray(visible, jnp.float32)
    if visible.shape != gt.shape[:2]:
        raise ValueError(f"visible must have shape {gt.shape[:2]} (N, K), got {visible.shape}")
    return pred, gt, visible


def normalizer(gt, norm, visible=None, boxes=None, eye_indices=None) -> jax.Array:
    """Per-image reference distance d_type of appendix B, float[N]."""
    if norm == "inter_ocular":
        if eye_indices is None:
            eye_indices = layouts.get_layout(gt.shape[-2]).eye_indices
        left, right = eye_indices
        return jnp.linalg.norm(gt[:, left] - gt[:, right], axis=-1)
    if norm not in ("box", "diagonal"):
        raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
    if boxes is None:
        boxes = geometry.tight_box(gt, visible)
    boxes = jnp.asarray(boxes, jnp.float32)
    if boxes.shape != (gt.shape[0], 4):
        raise ValueError(
            f"boxes must have shape ({gt.shape[0]}, 4) as (x_min, y_min, x_max, y_max), "
            f"got {boxes.shape}"
        )
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return jnp.sqrt(w * h) if norm == "box" else jnp.sqrt(w * w + h * h)


def nme(pred, gt, norm, visible=None, boxes=None, eye_indices=None) -> jax.Array:
    """Per-image normalised mean error over the visible points, float[N].

    Args:
      pred, gt: float[N, K, 2] in the same (image) coordinates.
      norm: "inter_ocular" (outer eye corners; 68 -> 36, 45, 98 -> 60, 72,
        29 -> 8, 9 unless eye_indices is given), "box" (sqrt(w * h) of
        `boxes`, or of gt's tight box when boxes is None) or "diagonal".
      visible: float[N, K] in {0, 1}; the mean runs over visible points only.
      boxes: float[N, 4] as (x_min, y_min, x_max, y_max).
      eye_indices: (left, right) indices for "inter_ocular".
    """
    pred, gt, visible = _check_landmarks(pred, gt, visible)
    count = jnp.sum(visible, axis=-1)
    _raise_for_images(count == 0, "no landmark is visible")
    d = normalizer(gt, norm, visible, boxes, eye_indices)
    _raise_for_images(~(jnp.isfinite(d) & (d > 0)), f"the {norm} normaliser is zero or not finite")
    err = jnp.linalg.norm(pred - gt, axis=-1)
    # Invisible points may hold NaN placeholders: select, never multiply, them away.
    total = jnp.sum(jnp.where(visible > 0, err * visible, 0.0), axis=-1)
    result = total / jnp.where(count > 0, count, jnp.nan) / jnp.where(d > 0, d, jnp.nan)
    _raise_for_images(~jnp.isfinite(result), "a visible landmark is not finite")
    return result


def _check_nmes(nmes, threshold) -> jax.Array:
    nmes = jnp.asarray(nmes, jnp.float32)
    if nmes.ndim != 1 or nmes.shape[0] == 0:
        raise ValueError(f"nmes must be a non-empty 1-D array, got shape {nmes.shape}")
    if is_concrete(threshold) and not float(threshold) > 0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    _raise_for_images(jnp.isnan(nmes), "NME is NaN")
    return nmes


def ced(nmes, threshold, num_points=1000) -> tuple[jax.Array, jax.Array]:
    """The cumulative error curve on [0, threshold]: (errors, fraction of images with NME <= error)."""
    nmes = _check_nmes(nmes, threshold)
    errors = jnp.linspace(0.0, threshold, num_points)
    return errors, jnp.mean(nmes[None, :] <= errors[:, None], axis=-1)


def auc(nmes, threshold) -> jax.Array:
    """Area under the cumulative error curve up to `threshold`, divided by it, in [0, 1].

    Exact for the step-function curve: image i adds max(0, threshold - nme_i).
    """
    nmes = _check_nmes(nmes, threshold)
    return jnp.mean(jnp.maximum(threshold - nmes, 0.0)) / threshold


def failure_rate(nmes, threshold) -> jax.Array:
    """Fraction of images whose NME exceeds `threshold`."""
    nmes = _check_nmes(nmes, threshold)
    return jnp.mean(nmes > threshold)


def nmj(pred, gt, norm="box", visible=None, eye_indices=None) -> jax.Array:
    """Normalised mean jitter of one face track, per transition t -> t + 1, float[T - 1].

    As LDEQ defines it for WFLW-V (Micaelli et al., "Recurrence without Recurrence: Stable
    Video Landmark Detection with Deep Equilibrium Models", CVPR 2023, and its code): with the
    error e_t = pred_t - gt_t, jitter_t = RMS over the points visible in both frames of
    ||e_t,k - e_{t-1},k||, divided by the face size of frame t, sqrt(w * h) of gt_t's tight box
    (norm="box"; any `nme` norm may be asked for instead). A track's NMJ is the RMS of these
    over its transitions; LDEQ reports it x 100 for a face scaled to 256 x 256 px, i.e. 25,600
    times this fraction. Only the error's change counts: a constant offset (bias) gives 0, and
    so does genuine motion, which gt shares and subtracts.

    Args:
      pred, gt: float[T, K, 2], T >= 2 frames of one face in image coordinates.
      norm, eye_indices: as for `nme`.
      visible: float[T, K] in {0, 1}.
    """
    pred, gt, visible = _check_landmarks(pred, gt, visible)
    if gt.shape[0] < 2:
        raise ValueError(f"a track needs at least 2 frames, got {gt.shape[0]}")
    both = visible[1:] * visible[:-1]
    count = jnp.sum(both, axis=-1)
    where = "transition(s) t -> t + 1, t ="
    _raise_for_images(count == 0, "no landmark is visible in both frames", where)
    d = normalizer(gt[1:], norm, visible[1:], None, eye_indices)
    _raise_for_images(
        ~(jnp.isfinite(d) & (d > 0)), f"the {norm} normaliser is zero or not finite", where
    )
    err = pred - gt
    step = jnp.sum(jnp.square(err[1:] - err[:-1]), axis=-1)
    # Invisible points may hold NaN placeholders: select, never multiply, them away.
    total = jnp.sum(jnp.where(both > 0, step, 0.0), axis=-1)
    rms = jnp.sqrt(total / jnp.where(count > 0, count, jnp.nan))
    result = rms / jnp.where(d > 0, d, jnp.nan)
    _raise_for_images(~jnp.isfinite(result), "a visible landmark is not finite", where)
    return result


def _check_views(points) -> jax.Array:
    points = jnp.asarray(points, jnp.float32)
    if points.ndim != 4 or points.shape[-1] != 2 or points.shape[0] < 2:
        raise ValueError(f"points must have shape [V, N, K, 2] with V >= 2, got {points.shape}")
    return points


def spread_normalizer(points, eye_indices=None) -> jax.Array:
    """Inter-ocular distance of the mean over the views, float[N]: `spread`'s scale without gt.

    points: float[V, N, K, 2]; eye_indices as for `nme`.
    """
    return normalizer(
        jnp.mean(_check_views(points), axis=0), "inter_ocular", None, None, eye_indices
    )


def spread(points, normalizer) -> jax.Array:
    """Disagreement of V predictions of each face, without ground truth, float[N].

    spread_n = mean_k sqrt(mean_v ||p_v,n,k - m_n,k||^2) / d_n, m the mean over the views:
    each point's RMS distance from the views' consensus, averaged over the points, normalised.

    Args:
      points: float[V, N, K, 2], predictions for V transformed views of N faces (flips,
        shifts, scales, ...) mapped back to the original image's coordinates.
      normalizer: float[N], e.g. `spread_normalizer(points)` or the gt's inter-ocular distance.
    """
    points = _check_views(points)
    d = jnp.asarray(normalizer, jnp.float32)
    if d.shape != points.shape[1:2]:
        raise ValueError(f"normalizer must have shape ({points.shape[1]},) (N), got {d.shape}")
    _raise_for_images(
        ~(jnp.isfinite(d) & (d > 0)), "the normaliser is zero or not finite", "face(s)"
    )
    dev = points - jnp.mean(points, axis=0)
    rms = jnp.sqrt(jnp.mean(jnp.sum(dev * dev, axis=-1), axis=0))  # [N, K]
    result = jnp.mean(rms, axis=-1) / d
    _raise_for_images(~jnp.isfinite(result), "a point is not finite", "face(s)")
    return result
