"""Tests for sphm_jax.synthetic: the sample sheet and the test clip, written by the command."""

import numpy as np
import pytest
from PIL import Image

from sphm_jax import synthetic
from sphm_jax.data import landmark_io, synthetic_faces


def test_grid_command_writes_a_sheet(tmp_path):
    path = tmp_path / "grid.png"
    synthetic.main(
        ["--grid", str(path), "--seed", "3", "--rows", "1", "--cols", "2", "--tile", "64"]
    )
    with Image.open(path) as sheet:
        assert sheet.size == (128, 64)


def test_clip_command_writes_a_video_frames_and_pts_files_that_read_back(tmp_path):
    cv2 = pytest.importorskip("cv2")
    synthetic.main(["--clip", str(tmp_path), "--seed", "0", "--frames", "6"])  # a colour face
    frames, landmarks = synthetic_faces.render_clip(0, 6)
    capture = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    decoded = []
    while (read := capture.read())[0]:
        decoded.append(read[1][..., ::-1])  # BGR -> RGB
    capture.release()
    assert np.shape(decoded) == frames.shape
    # mp4v is lossy; swapped colour channels would be off by far more.
    assert np.abs(np.asarray(decoded, np.float32) - frames).mean() < 6
    np.testing.assert_array_equal(np.load(tmp_path / "landmarks.npy"), landmarks)
    for i in range(6):
        with Image.open(tmp_path / "frames" / f"{i:06d}.png") as png:
            np.testing.assert_array_equal(np.asarray(png), frames[i])
        pts = landmark_io.read_pts(tmp_path / "frames" / f"{i:06d}.pts", 68)
        np.testing.assert_allclose(pts, landmarks[i], atol=2e-5)  # 6 decimals, float32
