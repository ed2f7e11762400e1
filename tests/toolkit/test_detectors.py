"""Tests for sphm_jax.toolkit.detectors: the real detectors on real photographs shipped by packages,
and the calibration's fit, storage and use."""

import json
import sys

import numpy as np
import pytest

from sphm_jax.data import sample_photos
from sphm_jax.data.boxes import InputError, match
from sphm_jax.toolkit import detectors


def test_calibration_fit_recovers_a_known_shift_and_scale_and_is_stored(tmp_path):
    rng = np.random.default_rng(0)
    centres, sides = rng.uniform(50, 400, (40, 2)), rng.uniform(40, 200, 40)
    dets = np.concatenate([centres - sides[:, None] / 2, centres + sides[:, None] / 2], -1)
    truth = detectors.Calibration("mtcnn", scale=1.3, shift=(0.05, 0.2))
    faces = truth.apply(dets)
    faces[:, 0] += 0.1 * sides  # narrower: only the longer side and the centre matter ...
    faces[:, 2] -= 0.1 * sides  # ... and the centre stays
    fitted = detectors.fit_calibration("mtcnn", dets, faces)
    np.testing.assert_allclose(fitted.scale, 1.3, rtol=1e-5)
    np.testing.assert_allclose(fitted.shift, (0.05, 0.2), atol=1e-5)
    assert fitted.faces == 40
    with pytest.raises(InputError, match="no matched face"):
        detectors.fit_calibration("dlib", [], [])

    (tmp_path / "checkpoints").mkdir()
    assert detectors.read_calibration(tmp_path, "mtcnn") is None
    detectors.write_calibration(tmp_path, fitted, {"nme": 0.05})
    detectors.write_calibration(tmp_path, detectors.Calibration("dlib", 0.9), {})
    assert detectors.read_calibration(tmp_path, "mtcnn") == fitted
    assert detectors.read_calibration(tmp_path / "checkpoints", "dlib").scale == 0.9  # its parent
    assert json.loads((tmp_path / detectors.CALIBRATION_FILE).read_text())["mtcnn"]["measured"]
    (tmp_path / detectors.CALIBRATION_FILE).write_text("{broken")
    with pytest.raises(InputError, match="detector_calibration.json: not valid JSON"):
        detectors.read_calibration(tmp_path, "mtcnn")


def test_unknown_and_missing_detectors_say_what_to_do(monkeypatch):
    with pytest.raises(InputError, match="'retina': choose one of mtcnn, dlib, lbp or none"):
        detectors.load_detector("retina")
    monkeypatch.setitem(sys.modules, "mtcnn", None)  # as if not installed
    with pytest.raises(detectors.MissingDetector, match=r"sphm_jax\[detect\]"):
        detectors.load_detector("mtcnn")


@pytest.fixture(scope="module")
def photos():
    pytest.importorskip("skimage")
    return sample_photos.shipped_photos()


@pytest.mark.parametrize("name", detectors.DETECTORS)
def test_each_detector_finds_both_faces_of_a_two_photo_group(photos, name):
    pytest.importorskip({"mtcnn": "mtcnn", "dlib": "dlib", "lbp": "skimage"}[name])
    (_, astronaut, a_box), (_, grace, g_box) = photos[:2]
    # A group photo of two real faces: Grace Hopper's picture beside the astronaut's.
    height = max(astronaut.shape[0], grace.shape[0])
    group = np.zeros((height, astronaut.shape[1] + grace.shape[1], 3), np.uint8)
    group[: astronaut.shape[0], : astronaut.shape[1]] = astronaut
    group[: grace.shape[0], astronaut.shape[1] :] = grace
    faces = np.concatenate([a_box, g_box + [astronaut.shape[1], 0, astronaut.shape[1], 0]])
    detect_faces = detectors.load_detector(name)
    boxes, scores = detect_faces(group)
    assert boxes.dtype == np.float32 and boxes.shape == (len(scores), 4)
    assert np.all(match(boxes, faces) >= 0), boxes
    calibration = detectors.Calibration(name, scale=1.2, shift=(0.0, 0.1))
    crops = detectors.face_boxes(detect_faces, calibration, group)
    np.testing.assert_allclose(crops, calibration.apply(boxes[np.argsort(-scores, kind="stable")]))
