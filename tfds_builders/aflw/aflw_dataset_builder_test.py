"""Tests for the aflw builder: a tiny AFLWinfo_release.mat in the release's layout, errors, skips."""

from __future__ import annotations

import io
import shutil
from unittest import mock

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
from PIL import Image

from tfds_builders import common
from tfds_builders.aflw import aflw_dataset_builder as aflw

# Six faces on four images (faces 1 and 2 share one): four train, two test.
DUMMY_SIZES = {"NUM_FACES": 6, "NUM_TRAIN": 4}
NAMES = [
    "0/image00002.jpg",
    "0/image00002.jpg",
    "2/image13000.jpg",
    "3/image20000.jpg",
    "3/image20001.jpg",
    "0/image00004.jpg",
]
RA = [3, 1, 5, 6, 2, 4]  # 1-based: train rows 3, 1, 5, 6; test rows 2, 4


def fake_release(rng) -> dict:
    """The variables of AFLWinfo_release.mat, MATLAB shapes, for the faces in NAMES."""
    n = len(NAMES)
    xy = rng.uniform(6.0, 26.0, (n, 2, 19))
    mask = np.ones((n, 19))
    mask[1, [3, 7]] = 0  # test face (row 2) with two invisible points: not frontal
    mask[4, 0] = 0
    names = np.empty((n, 1), object)
    names[:, 0] = NAMES
    return {
        "data": xy.reshape(n, 38),
        "mask_new": mask,
        "bbox": np.tile([4.0, 28.0, 5.0, 29.0], (n, 1)),  # x_min, x_max, y_min, y_max
        "ra": np.asarray(RA, np.float64)[None, :],
        "nameList": names,
    }


def jpeg(rng, size=(32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def write_aflw(root, seed: int = 0, images_at: str = "flickr") -> dict:
    """AFLWinfo_release.mat and the images it names under root/images_at."""
    rng = np.random.default_rng(seed)
    release = fake_release(rng)
    scipy.io.savemat(root / aflw.MAT_FILE, release)
    for name in sorted(set(NAMES)):
        path = root / images_at / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg(rng))
    return release


@mock.patch.multiple(aflw, **DUMMY_SIZES)
class AflwTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = aflw.Builder
    SPLITS = {"train": 4, "test": 2}


@pytest.fixture
def manual_dir(tmp_path):
    with mock.patch.multiple(aflw, **DUMMY_SIZES):
        yield tmp_path, write_aflw(tmp_path)


def test_values_follow_the_release(manual_dir):
    root, release = manual_dir
    test = dict(aflw.aflw_examples(root, "test", skip_corrupt=False))
    assert list(test) == ["00002", "00004"]  # ra order
    ex = test["00002"]
    np.testing.assert_allclose(ex["landmarks"][:, 0], release["data"][1, :19], rtol=1e-6)
    np.testing.assert_allclose(ex["landmarks"][:, 1], release["data"][1, 19:], rtol=1e-6)
    np.testing.assert_array_equal(ex["visible"], release["mask_new"][1])
    np.testing.assert_allclose(ex["bbox"], [4.0, 5.0, 28.0, 29.0])
    assert ex["image_id"] == "0/image00002.jpg#2" and ex["image_path"] == "0/image00002.jpg"
    assert ex["face_index"] == 2 and not ex["frontal"] and test["00004"]["frontal"]
    train = dict(aflw.aflw_examples(root, "train", skip_corrupt=False))
    assert list(train) == ["00003", "00001", "00005", "00006"]


def test_images_under_aflw_data_flickr_are_found(tmp_path):
    with mock.patch.multiple(aflw, **DUMMY_SIZES):
        write_aflw(tmp_path, images_at="aflw/data/flickr")
        assert len(list(aflw.aflw_examples(tmp_path, "test", skip_corrupt=False))) == 2


def test_missing_files_are_named(tmp_path):
    config = tfds.download.DownloadConfig(manual_dir=tmp_path)
    builder = aflw.Builder(data_dir=tmp_path / "out")
    with pytest.raises(common.DataError, match="missing AFLWinfo_release.mat"):
        builder.download_and_prepare(download_config=config)
    with mock.patch.multiple(aflw, **DUMMY_SIZES):
        write_aflw(tmp_path)
        shutil.rmtree(tmp_path / "flickr")
        with pytest.raises(common.DataError, match="missing flickr/"):
            builder.download_and_prepare(download_config=config)


def test_missing_or_corrupt_image_raises_or_is_skipped_and_counted(manual_dir, caplog):
    root, _ = manual_dir
    (root / "flickr/2/image13000.jpg").write_bytes(b"truncated")  # row 3, first in train
    (root / "flickr/0/image00004.jpg").unlink()  # row 6
    with pytest.raises(common.DataError, match=r"flickr/2/image13000.jpg: not a readable image"):
        list(aflw.aflw_examples(root, "train", skip_corrupt=False))
    examples = dict(aflw.aflw_examples(root, "train", skip_corrupt=True))
    assert list(examples) == ["00001", "00005"]
    assert "flickr/0/image00004.jpg" in caplog.text
    assert "skipped 2 corrupt example(s)" in caplog.text


def test_corrupt_row_names_file_and_row(manual_dir, caplog):
    root, release = manual_dir
    release["mask_new"][3, 5] = 0.5  # row 4, a test face
    release["bbox"][1] = [10.0, 10.0, 5.0, 29.0]  # row 2: zero width
    scipy.io.savemat(root / aflw.MAT_FILE, release)
    with pytest.raises(
        common.DataError, match=r"AFLWinfo_release.mat row 2 of 'bbox': degenerate box"
    ):
        list(aflw.aflw_examples(root, "test", skip_corrupt=False))
    release["bbox"][1] = [4.0, 28.0, 5.0, 29.0]
    scipy.io.savemat(root / aflw.MAT_FILE, release)
    with pytest.raises(common.DataError, match=r"AFLWinfo_release.mat row 4 of 'mask_new'"):
        list(aflw.aflw_examples(root, "test", skip_corrupt=False))
    assert list(dict(aflw.aflw_examples(root, "test", skip_corrupt=True))) == ["00002"]
    assert "skipped 1 corrupt example(s)" in caplog.text


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda r: r.pop("mask_new"), "missing variable.*mask_new"),
        (lambda r: r.update(data=r["data"][:, :30]), r"'data' has shape \(6, 30\)"),
        (lambda r: r.update(ra=np.array([[1, 1, 2, 3, 4, 5]])), "'ra' is not a permutation"),
    ],
)
def test_inconsistent_release_is_named(manual_dir, change, message):
    root, release = manual_dir
    change(release)
    scipy.io.savemat(root / aflw.MAT_FILE, release)
    with pytest.raises(common.DataError, match=f"AFLWinfo_release.mat: .*{message}"):
        list(aflw.aflw_examples(root, "train", skip_corrupt=True))


def test_the_full_release_sizes_are_required(manual_dir):
    root, _ = manual_dir
    with (
        mock.patch.object(aflw, "NUM_FACES", 24386),
        pytest.raises(common.DataError, match=r"expected \(24386, 38\)"),
    ):
        list(aflw.aflw_examples(root, "train", skip_corrupt=False))


if __name__ == "__main__":
    # Regenerates dummy_data/ (run from the repository root).
    target = aflw.Builder.code_path.parent / "dummy_data"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    write_aflw(target)
