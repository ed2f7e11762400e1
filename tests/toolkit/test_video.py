"""Tests for sphm_jax.toolkit.video and predict's video path: when the tracker detects, what it crops,
smoothing, and a rendered clip through `python -m sphm_jax.predict` as mp4 and as frames."""

import json

import numpy as np
import pytest

from sphm_jax import geometry, predict
from sphm_jax.data import synthetic_faces
from sphm_jax.toolkit import smoothing, video

K = 68


class FakeModel:
    """Points on a fixed pattern inside each box, moved 1 px right per call; scores on a schedule."""

    def __init__(self, low_at=()):
        self.calls, self.boxes, self.low_at, self.seen = 0, [], set(low_at), set()
        self.pattern = np.random.default_rng(0).uniform(0.1, 0.9, (K, 2))

    def __call__(self, frame, boxes):
        boxes = np.asarray(boxes, np.float32)
        self.boxes.append(boxes)
        size = boxes[:, 2:] - boxes[:, :2]
        points = boxes[:, None, :2] + self.pattern[None] * size[:, None] + [self.calls, 0]
        frame_index = int(frame[0, 0, 0])
        first = frame_index not in self.seen  # low on the tracked call, not on the re-detected one
        self.seen.add(frame_index)
        score = 0.05 if frame_index in self.low_at and first else 0.9
        self.calls += 1
        return points.astype(np.float32), np.full((len(boxes), K), score, np.float32)


class FakeDetector:
    def __init__(self, box=(8.0, 8.0, 40.0, 40.0), empty=False):
        self.box, self.empty, self.frames = np.float32([box]), empty, []

    def __call__(self, frame):
        self.frames.append(int(frame[0, 0, 0]))
        return np.zeros((0, 4), np.float32) if self.empty else self.box


def _frames(n):
    return [np.full((48, 48, 3), t, np.uint8) for t in range(n)]  # pixel value = frame index


def test_detects_once_then_crops_from_the_previous_landmarks():
    model, detector = FakeModel(), FakeDetector()
    out = list(video.track(_frames(4), model, detector))
    assert detector.frames == [0]
    assert [f.detected for _, faces in out for f in faces] == [True, False, False, False]
    for t in range(1, 4):  # each crop is the tight box of the previous frame's landmarks
        previous = out[t - 1][1][0].points
        np.testing.assert_allclose(model.boxes[t][0], geometry.tight_box(previous), rtol=1e-6)
    assert [faces[0].track for _, faces in out] == [0, 0, 0, 0]
    assert [int(frame[0, 0, 0]) for frame, _ in out] == [0, 1, 2, 3]


def test_a_lost_track_is_detected_again_and_keeps_its_id():
    model, detector = FakeModel(low_at={2}), FakeDetector()
    out = list(video.track(_frames(5), model, detector))
    assert detector.frames == [0, 2]
    assert [faces[0].detected for _, faces in out] == [True, False, True, False, False]
    assert {faces[0].track for _, faces in out} == {0}
    detector = FakeDetector()
    list(video.track(_frames(5), FakeModel(), detector, redetect_every=2))
    assert detector.frames == [0, 2, 4]


def test_frames_without_a_face_keep_asking_the_detector():
    detector = FakeDetector(empty=True)
    out = list(video.track(_frames(3), FakeModel(), detector))
    assert detector.frames == [0, 1, 2] and all(faces == [] for _, faces in out)


def test_smoothing_filters_the_output_not_the_tracking():
    raw = [faces[0] for _, faces in video.track(_frames(6), FakeModel(), FakeDetector())]
    params = smoothing.OneEuroParams(min_cutoff=1.0, beta=0.0)
    model = FakeModel()
    smooth = [f[0] for _, f in video.track(_frames(6), model, FakeDetector(), smooth=params)]
    np.testing.assert_array_equal(smooth[0].points, raw[0].points)
    expected = smoothing.smooth(np.stack([f.points for f in raw]), 25.0, min_cutoff=1.0, beta=0.0)
    np.testing.assert_allclose(np.stack([f.points for f in smooth]), expected, rtol=1e-5)
    # The crops still follow the raw landmarks: smoothing does not add lag to tracking.
    np.testing.assert_allclose(model.boxes[3][0], geometry.tight_box(raw[2].points), rtol=1e-6)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    pytest.importorskip("cv2")
    frames, landmarks = synthetic_faces.render_clip(0, 10, 256)
    return synthetic_faces.write_clip(tmp_path_factory.mktemp("clip"), frames, landmarks), landmarks


@pytest.mark.xdist_group("uninterrupted")
def test_a_rendered_clip_through_predict_as_mp4_and_as_frames(clip, uninterrupted, tmp_path):
    pytest.importorskip("mtcnn")
    paths, _ = clip
    base = ["--checkpoint", str(uninterrupted), "--lost_score", "0"]  # untrained: never "lost"
    out = tmp_path / "mp4.jsonl"
    args = [str(paths["video"]), *base, "--output", str(out), "--overlays", str(tmp_path / "o.mp4")]
    assert predict.main(args) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted({r["frame"] for r in records}) == list(range(10))
    assert [r["frame"] for r in records] == sorted(r["frame"] for r in records)
    found = [r for r in records if r["error"] is None]
    assert found and all(r["face"] == 0 and len(r["landmarks"]) == K for r in found)
    assert all(r["error"] == "no face detected" for r in records if r["landmarks"] is None)
    frames, fps = video.video_frames(tmp_path / "o.mp4")
    assert len(list(frames)) == 10 and fps == 25.0

    csv_out = tmp_path / "frames.csv"
    args = [str(paths["frames"]), "--video", *base, "--output", str(csv_out), "--smooth"]
    args += ["--overlays", str(tmp_path / "png")]
    assert predict.main(args) == 0
    rows = csv_out.read_text().splitlines()
    assert rows[0].startswith("image,frame,face,") and len(rows) == 11
    assert len(list((tmp_path / "png" / "frames").glob("*.png"))) == 10


def test_video_inputs_are_checked(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    args = [
        str(tmp_path / "bad.mp4"),
        "--checkpoint",
        str(tiny_checkpoint[0]),
        "--image_size",
        "64",
    ]
    assert predict.main([*args, "--detector", "none"]) == 2
    assert "videos need a face detector" in capsys.readouterr().err
    pytest.importorskip("mtcnn")
    out = tmp_path / "out.jsonl"
    assert predict.main([*args, "--output", str(out)]) == 1
    assert "bad.mp4: not a readable video" in json.loads(out.read_text())["error"]
    (tmp_path / "a.png").write_bytes(b"")
    assert predict.main([str(tmp_path), str(tmp_path / "a.png"), "--video", *args[1:]]) == 2
    assert "--video takes video files and folders of frames" in capsys.readouterr().err
