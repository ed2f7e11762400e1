"""Tests for sphm_jax.data.synthetic_faces: the procedural face, the faces drawn from it and their renderer."""

import dataclasses
import sys

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from sphm_jax import geometry, layouts
from sphm_jax.data import synthetic_faces


def test_template_is_mirror_symmetric_under_the_ibug_flip_permutation():
    template = synthetic_faces.face_template_68()
    perm = np.array(layouts.get_layout(68).flip_permutation)
    mirrored = template * np.array([-1.0, 1.0], np.float32)
    np.testing.assert_allclose(mirrored[perm], template, atol=1e-6)


def test_template_eye_corners_are_outermost_and_left_of_right():
    template = synthetic_faces.face_template_68()
    left, right = layouts.get_layout(68).eye_indices
    eyes = template[36:48]
    assert template[left, 0] == eyes[:, 0].min() and template[right, 0] == eyes[:, 0].max()
    assert template[8, 1] == template[:, 1].max()  # the chin is the lowest point


def test_sampled_faces_are_deterministic_inside_their_images_and_varied():
    a, sizes = synthetic_faces.sample_landmarks(7, 50)
    b, _ = synthetic_faces.sample_landmarks(7, 50)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 68, 2) and a.dtype == np.float32
    assert np.all(a >= 0) and np.all(a <= (sizes[:, None, :] - 1))
    box = np.asarray(geometry.tight_box(a))
    widths = box[:, 2] - box[:, 0]
    assert widths.std() / widths.mean() > 0.1
    assert not np.allclose(a, synthetic_faces.sample_landmarks(8, 50)[0])


# ---------------------------------------------------------------------------
# The renderer of the synthetic_faces data set.

SHIFT = np.array([0.5, 0.25])


def polygon_area_centroid(poly):
    x, y = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2
    return abs(area), np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (6 * area)


def full_mask(poly, size):
    r0, c0, cov = synthetic_faces.coverage(poly, size, size)
    out = np.zeros((size, size), np.float32)
    out[r0 : r0 + cov.shape[0], c0 : c0 + cov.shape[1]] = cov
    return out


def centroid(weights):
    yy, xx = np.mgrid[: weights.shape[0], : weights.shape[1]]
    return np.array([(weights * xx).sum(), (weights * yy).sum()]) / weights.sum()


def test_coverage_is_exact_area_with_pixel_centres_at_integers():
    # A square from pixel corner (1.5, 1.5) to (5.5, 5.5) covers pixels 2..5 exactly.
    square = np.array([[1.5, 1.5], [5.5, 1.5], [5.5, 5.5], [1.5, 5.5]])
    expected = np.zeros((8, 8), np.float32)
    expected[2:6, 2:6] = 1
    np.testing.assert_allclose(full_mask(square, 8), expected, atol=1e-6)
    # Moved by a quarter pixel, its edge pixels are a quarter / three quarters covered.
    mask = full_mask(square + 0.25, 8)
    np.testing.assert_allclose(mask[3, 1:7], [0, 0.75, 1, 1, 1, 0.25], atol=1e-6)


def test_coverage_area_and_centroid_follow_the_polygon_to_thousandths_of_a_pixel():
    rng = np.random.default_rng(0)
    for _ in range(5):
        n = rng.integers(3, 30)
        t = 2 * np.pi * (np.arange(n) + rng.uniform(-0.4, 0.4, n)) / n
        r = rng.uniform(5, 25, n)
        poly = rng.uniform(28, 36, 2) + np.stack([r * np.cos(t), r * np.sin(t)], -1)
        poly = poly if rng.random() < 0.5 else poly[::-1]  # either orientation
        mask = full_mask(poly, 64)
        area, center = polygon_area_centroid(poly)
        assert mask.min() >= -1e-6 and mask.max() <= 1 + 1e-6
        np.testing.assert_allclose(mask.sum(), area, rtol=1e-3)  # 8 scanlines per row
        np.testing.assert_allclose(centroid(mask), center, atol=2e-3)
        moved = full_mask(poly + SHIFT, 64)
        np.testing.assert_allclose(centroid(moved) - centroid(mask), SHIFT, atol=1e-3)


def test_render_is_deterministic_for_a_seed():
    a = synthetic_faces.render_face(11)
    b = synthetic_faces.render_face(11)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], synthetic_faces.render_face(12)[0])
    rng_a, rng_b = np.random.default_rng([1, 2]), np.random.default_rng([1, 2])
    np.testing.assert_array_equal(
        synthetic_faces.render_face(rng_a)[1], synthetic_faces.render_face(rng_b)[1]
    )


def test_rendered_faces_lie_inside_their_images_with_a_tight_box():
    for seed in range(20):
        image, landmarks, bbox = synthetic_faces.render_face(
            seed, image_size=128 if seed % 2 else 256
        )
        size = image.shape[0]
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        assert landmarks.shape == (68, 2) and landmarks.dtype == np.float32
        assert np.all(landmarks >= 0) and np.all(landmarks <= size - 1)
        np.testing.assert_array_equal(bbox, np.concatenate([landmarks.min(0), landmarks.max(0)]))


def test_sampled_faces_cover_the_promised_variation():
    params = [synthetic_faces.sample_params(seed) for seed in range(300)]
    roll = np.array([p.roll for p in params])
    yaw = np.array([p.yaw for p in params])
    assert roll.min() < -40 and roll.max() > 40 and np.abs(roll).max() <= 45
    assert yaw.min() < -30 and yaw.max() > 30
    mouth = np.array([p.mouth_open for p in params])
    assert 0.25 < np.mean(mouth == 0) < 0.55 and mouth.max() > 0.9
    eyes = np.array([p.eye_open for p in params])
    assert eyes.min() < 0.1 and eyes.max() > 1.2
    assert 0.2 < np.mean([len(p.occluders) > 0 for p in params]) < 0.5
    assert 0.3 < np.mean([p.blur > 0 for p in params]) < 0.5
    widths = np.array([np.ptp(synthetic_faces.render(p).landmarks[:, 0]) for p in params[:40]])
    # The face is ~220 px of 256 wide on average; yaw and the fit to the image shrink some.
    assert 170 < widths.mean() < 230 and widths.std() > 15


def eye_outer_corners(face):
    """(corner, unit vector pointing out of the eye) of both outer eye corners (36, 45)."""
    for outer, inner in ((36, 39), (45, 42)):
        c = face.landmarks[outer].astype(np.float64)
        d = c - face.landmarks[inner]
        yield c, d / np.linalg.norm(d)


def test_rendered_eye_corners_lie_where_the_landmarks_say():
    yy, xx = np.mgrid[:256, :256]
    for seed in range(12):
        # Flat colours so "skin" is one colour; open eyes so the eye is more than a line.
        params = dataclasses.replace(
            synthetic_faces.clean(synthetic_faces.sample_params(seed)), eye_open=(1, 1)
        )
        face = synthetic_faces.render(params)
        skin = np.round(params.skin * 255).astype(int)
        diff = np.abs(face.image.astype(int) - skin).max(-1)
        for c, d in eye_outer_corners(face):
            ink = (diff > 2) & ((xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= 9)
            # Pixels whose square reaches the eye are inked; beyond the corner there are none,
            # so the outermost inked pixel centre is within the pixel's half-extent of it.
            outermost = ((xx - c[0]) * d[0] + (yy - c[1]) * d[1])[ink].max()
            assert abs(outermost) <= 0.75, (seed, c, outermost)
            j, i = np.rint(c + 1.5 * d).astype(int)
            assert diff[i, j] <= 1, (seed, "skin just outside the corner")
            j, i = np.rint(c - 1.5 * d).astype(int)
            assert diff[i, j] > 15, (seed, "eye just inside the corner")
        j, i = np.rint(face.landmarks[[37, 38, 40, 41]].mean(0)).astype(int)
        assert diff[i, j] > 30  # sclera or iris in the middle of the eye


def test_a_half_pixel_shift_moves_the_lips_by_the_landmarks_shift():
    """Sub-pixel agreement: the lips' coverage centroid moves as the landmarks do, to 0.02 px."""
    checked = 0
    for seed in range(30):
        params = dataclasses.replace(
            synthetic_faces.clean(synthetic_faces.sample_params(seed)), mouth_open=0
        )
        moved = dataclasses.replace(params, center=tuple(np.add(params.center, SHIFT)))
        a, b = synthetic_faces.render(params), synthetic_faces.render(moved)
        np.testing.assert_allclose(
            b.landmarks - a.landmarks, np.broadcast_to(SHIFT, (68, 2)), atol=1e-4
        )
        # The lips' coverage, read back from the colours: 0 on skin, 1 on the lip colour.
        skin = np.round(params.skin * 255)
        towards = skin - np.round(params.lips * 255)
        lips = a.landmarks[48:60]
        roi = full_mask(lips.mean(0) + 1.3 * (lips - lips.mean(0)), 256) > 0
        border = roi & ~binary_erosion(roi)
        masks = [
            np.clip((skin - f.image) @ towards / (towards @ towards), 0, 1) * roi for f in (a, b)
        ]
        if any(np.abs(f.image[border] - skin).max() > 1 for f in (a, b)):
            continue  # another feature (the nose) reaches into the region: no clean measurement
        np.testing.assert_allclose(centroid(masks[1]) - centroid(masks[0]), SHIFT, atol=0.02)
        checked += 1
    assert checked >= 3


def clip_landmarks(params):
    """float[T, 68, 2]: the landmarks `render` would give each frame, without drawing it."""
    units = [synthetic_faces.shape_landmarks(p) for p in params]
    return np.stack([synthetic_faces.project(u, p, u) for u, p in zip(units, params)])


def test_clip_stays_inside_its_frames_and_moves_smoothly_with_context_around_the_face():
    for seed in range(4):
        params = synthetic_faces.clip_params(seed, 96)
        points = clip_landmarks(params)
        assert np.all(points >= 0) and np.all(points <= 255)
        step = np.linalg.norm(np.diff(points, axis=0), axis=-1).max(-1)  # [T - 1] px
        assert step.min() > 0.3 and step.max() < 5.0, (seed, step.min(), step.max())
        width = np.ptp(points[..., 0], axis=-1) / 256
        assert 0.35 < width.min() and width.max() < 0.5, (seed, width.min(), width.max())
        assert {(p.texture_seed, p.blur, p.noise, p.occluders) for p in params} == {
            (params[0].texture_seed, params[0].blur, params[0].noise, ())
        }


def test_render_clip_is_deterministic_and_its_landmarks_are_the_renderers():
    frames, landmarks = synthetic_faces.render_clip(5, 4, 128)
    assert frames.shape == (4, 128, 128, 3) and frames.dtype == np.uint8
    assert landmarks.shape == (4, 68, 2) and landmarks.dtype == np.float32
    np.testing.assert_allclose(
        landmarks, clip_landmarks(synthetic_faces.clip_params(5, 4, 128)), atol=1e-4
    )
    again = synthetic_faces.render_clip(5, 4, 128)
    np.testing.assert_array_equal(frames, again[0])
    np.testing.assert_array_equal(landmarks, again[1])
    assert not np.array_equal(frames, synthetic_faces.render_clip(6, 4, 128)[0])


def test_write_clip_checks_its_input_and_names_the_package_it_needs(tmp_path, monkeypatch):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"landmarks must be \[2, K, 2\]"):
        synthetic_faces.write_clip(tmp_path, frames, np.zeros((3, 68, 2)))
    with pytest.raises(ValueError, match="frames must be uint8"):
        synthetic_faces.write_clip(tmp_path, frames.astype(np.float32), np.zeros((2, 68, 2)))
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` fail
    with pytest.raises(ImportError, match="pip install opencv-python-headless"):
        synthetic_faces.write_clip(tmp_path, frames, np.zeros((2, 68, 2)))
