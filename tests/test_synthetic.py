"""Tests for sphm_jax.synthetic: the procedural face and the faces drawn from it."""

import numpy as np

from sphm_jax import layouts, metrics, synthetic


def test_template_is_mirror_symmetric_under_the_ibug_flip_permutation():
    template = synthetic.face_template_68()
    perm = np.array(layouts.get_layout(68).flip_permutation)
    mirrored = template * np.array([-1.0, 1.0], np.float32)
    np.testing.assert_allclose(mirrored[perm], template, atol=1e-6)


def test_template_eye_corners_are_outermost_and_left_of_right():
    template = synthetic.face_template_68()
    left, right = layouts.get_layout(68).eye_indices
    eyes = template[36:48]
    assert template[left, 0] == eyes[:, 0].min() and template[right, 0] == eyes[:, 0].max()
    assert template[8, 1] == template[:, 1].max()  # the chin is the lowest point


def test_sampled_faces_are_deterministic_inside_their_images_and_varied():
    a, sizes = synthetic.sample_landmarks(7, 50)
    b, _ = synthetic.sample_landmarks(7, 50)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 68, 2) and a.dtype == np.float32
    assert np.all(a >= 0) and np.all(a <= (sizes[:, None, :] - 1))
    box = np.asarray(metrics.tight_box(a))
    widths = box[:, 2] - box[:, 0]
    assert widths.std() / widths.mean() > 0.1
    assert not np.allclose(a, synthetic.sample_landmarks(8, 50)[0])
