"""Tests for the ibug_300vw builder: tiny MJPG videos and frame folders, strides, errors, skips."""

from __future__ import annotations

import shutil
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from sphm_jax.data import landmark_io
from sphm_jax.data.landmark_io import AnnotationError
from tfds_builders import common
from tfds_builders.ibug_300vw import ibug_300vw_dataset_builder as vw

cv2 = pytest.importorskip("cv2", reason="decoding the dummy videos needs OpenCV")

# Five videos: the train ones as a video and as extracted PNG frames, one per category.
DUMMY_VIDEOS = {"train": ["001", "002"], "test_a": ["114"], "test_b": ["203"], "test_c": ["410"]}
# video id: (number of frames, "avi" or the extracted frames' suffix)
DUMMY_LAYOUT = {
    "001": (6, "avi"),
    "002": (3, ".png"),
    "114": (4, "avi"),
    "203": (3, ".jpg"),
    "410": (3, "avi"),
}
SIZE = (24, 32)  # height, width


def frame_image(number: int) -> np.ndarray:
    """A frame whose grey level tells its number, so tests can check the decoded order."""
    image = np.zeros((*SIZE, 3), np.uint8)
    image[...] = 30 * number
    image[:, :4, 0] = 250  # a red left edge: RGB order survives decoding
    return image


def write_video(path, count: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, SIZE[::-1])
    for number in range(1, count + 1):
        writer.write(frame_image(number)[..., ::-1])  # OpenCV writes BGR
    writer.release()


def fake_points(rng, number: int) -> np.ndarray:
    return rng.uniform(4.0, 20.0, (68, 2)) + number  # 0-based


def write_300vw(root, seed: int = 0, layout=DUMMY_LAYOUT) -> dict:
    """The 300VW layout under root; returns {(video id, frame): 0-based points}."""
    rng = np.random.default_rng(seed)
    points = {}
    for video_id, (count, kind) in layout.items():
        video_dir = root / vw.DATASET_DIR / video_id
        (video_dir / "annot").mkdir(parents=True)
        if kind == "avi":
            write_video(video_dir / "vid.avi", count)
        else:
            (video_dir / "frames").mkdir()
            for number in range(1, count + 1):
                Image.fromarray(frame_image(number)).save(video_dir / f"frames/{number:06d}{kind}")
        for number in range(1, count + 1):
            points[video_id, number] = fake_points(rng, number)
            text = landmark_io.format_pts(points[video_id, number])
            (video_dir / f"annot/{number:06d}.pts").write_text(text)
    return points


class Ibug300vwStride1Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = vw.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["stride1"]
    SPLITS = {"train": 9, "test_a": 4, "test_b": 3, "test_c": 3}

    def setUp(self):
        super().setUp()
        self.enterContext(mock.patch.dict(vw.SPLIT_VIDEOS, DUMMY_VIDEOS))


class Ibug300vwStride5Test(Ibug300vwStride1Test):
    BUILDER_CONFIG_NAMES_TO_TEST = ["stride5"]
    SPLITS = {"train": 3, "test_a": 1, "test_b": 1, "test_c": 1}  # frame 1, and 6 of 001


class Ibug300vwStride25Test(Ibug300vwStride1Test):
    BUILDER_CONFIG_NAMES_TO_TEST = ["stride25"]
    SPLITS = {"train": 2, "test_a": 1, "test_b": 1, "test_c": 1}


@pytest.fixture
def manual_dir(tmp_path):
    with mock.patch.dict(vw.SPLIT_VIDEOS, DUMMY_VIDEOS):
        yield tmp_path, write_300vw(tmp_path)


def test_splits_follow_the_published_lists():
    videos = [v for split in vw.SPLIT_VIDEOS.values() for v in split]
    assert len(videos) == len(set(videos)) == 114
    assert [len(vw.SPLIT_VIDEOS[s]) for s in ("train", "test_a", "test_b", "test_c")] == [
        50,
        31,
        19,
        14,
    ]


def test_video_and_frames_give_the_annotated_frames(manual_dir):
    root, points = manual_dir
    train = dict(vw.split_examples(root, "train", stride=1, skip_corrupt=False))
    assert list(train) == [f"001/{n:06d}" for n in range(1, 7)] + [
        f"002/{n:06d}" for n in range(1, 4)
    ]
    for key, ex in train.items():
        video_id, number = key.split("/")
        np.testing.assert_allclose(ex["landmarks"], points[video_id, int(number)], atol=1e-4)
        # MJPG is lossy: compare the grey level that encodes the frame number, and the red edge.
        assert abs(float(ex["image"][:, 8:].mean()) - 30 * int(number)) < 4
        edge = ex["image"][:, :2].mean(axis=(0, 1))
        assert edge[0] - edge[2] > 50  # red, not blue: RGB order
        assert ex["image"].shape == (*SIZE, 3) and ex["frame"] == int(number)
        assert ex["video_id"] == video_id and ex["category"] == "train"
    assert dict(vw.split_examples(root, "test_c", 1, False))["410/000002"]["category"] == "C"


def test_stride_keeps_frames_one_plus_multiples(manual_dir):
    root, _ = manual_dir
    keys = [key for key, _ in vw.split_examples(root, "train", stride=2, skip_corrupt=False)]
    assert keys == ["001/000001", "001/000003", "001/000005", "002/000001", "002/000003"]


def test_missing_files_are_named(tmp_path):
    config = tfds.download.DownloadConfig(manual_dir=tmp_path)
    builder = vw.Builder(config="stride25", data_dir=tmp_path / "out")
    with pytest.raises(common.DataError, match=f"missing {vw.DATASET_DIR} \\("):
        builder.download_and_prepare(download_config=config)
    with mock.patch.dict(vw.SPLIT_VIDEOS, DUMMY_VIDEOS):
        write_300vw(tmp_path)
        (tmp_path / vw.DATASET_DIR / "114/vid.avi").unlink()
        with pytest.raises(common.DataError, match=f"missing {vw.DATASET_DIR}/114/vid.avi"):
            builder.download_and_prepare(download_config=config)


def test_corrupt_annotation_names_file_and_line(manual_dir, caplog):
    root, _ = manual_dir
    pts = root / vw.DATASET_DIR / "114/annot/000003.pts"
    lines = pts.read_text().splitlines()
    lines[3] = "1.0 abc"  # the first point line: version, n_points and { come first
    pts.write_text("\n".join(lines))
    with pytest.raises(AnnotationError, match=r"114/annot/000003.pts:4: expected two finite"):
        list(vw.split_examples(root, "test_a", 1, skip_corrupt=False))
    keys = [key for key, _ in vw.split_examples(root, "test_a", 1, skip_corrupt=True)]
    assert keys == ["114/000001", "114/000002", "114/000004"]
    assert "skipped 1 corrupt example(s)" in caplog.text


def test_short_or_corrupt_video_and_missing_frame_are_named(manual_dir, caplog):
    root, _ = manual_dir
    video_dir = root / vw.DATASET_DIR
    (video_dir / "114/annot/000005.pts").write_text(
        (video_dir / "114/annot/000004.pts").read_text()
    )
    with pytest.raises(common.DataError, match=r"114/vid.avi: ends after frame 4, no frame 5"):
        list(vw.split_examples(root, "test_a", 1, skip_corrupt=False))
    (video_dir / "410/vid.avi").write_bytes(b"not a video")
    with pytest.raises(common.DataError, match=r"410/vid.avi: not a readable video"):
        list(vw.split_examples(root, "test_c", 1, skip_corrupt=False))
    (video_dir / "002/frames/000002.png").unlink()
    with pytest.raises(common.DataError, match=r"002/frames/000002.png \(or .jpg\): missing"):
        list(vw.split_examples(root, "train", 1, skip_corrupt=False))
    assert len(list(vw.split_examples(root, "train", 1, skip_corrupt=True))) == 8
    assert "skipped 1 corrupt example(s)" in caplog.text


def test_misnamed_or_missing_annotations_are_reported(manual_dir, caplog):
    root, _ = manual_dir
    annot = root / vw.DATASET_DIR / "203/annot"
    (annot / "000002.pts").rename(annot / "frame2.pts")
    with pytest.raises(common.DataError, match=r"frame2.pts: not named by a frame number"):
        list(vw.split_examples(root, "test_b", 1, skip_corrupt=False))
    assert len(list(vw.split_examples(root, "test_b", 1, skip_corrupt=True))) == 2
    for path in annot.iterdir():
        path.unlink()
    with pytest.raises(common.DataError, match=r"203/annot: no .pts files"):
        list(vw.split_examples(root, "test_b", 1, skip_corrupt=False))


if __name__ == "__main__":
    # Regenerates dummy_data/ (run from the repository root).
    target = vw.Builder.code_path.parent / "dummy_data"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    write_300vw(target)
