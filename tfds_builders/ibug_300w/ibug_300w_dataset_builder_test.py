"""Tests for the ibug_300w builder: dummy data in the release's formats, values, errors, skips."""

from __future__ import annotations

import io
import logging
import shutil

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
from etils import epath

from sphm_jax.data.landmark_io import AnnotationError, read_pts
from tfds_builders import common
from tfds_builders.ibug_300w import ibug_300w_dataset_builder as ibug

DUMMY = epath.Path(__file__).parent / "dummy_data"


class Split1Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = ibug.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["split1"]
    SPLITS = {"train": 7, "test": 2}


class Split2Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = ibug.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["split2"]
    SPLITS = {"train": 4, "test_common": 2, "test_challenge": 1}


@pytest.fixture
def manual_dir(tmp_path):
    root = tmp_path / "manual"
    shutil.copytree(DUMMY, root)
    return epath.Path(root)


def box_mat_bytes(entries) -> bytes:
    """A bounding_boxes_*.mat as the release writes it: a 1 x N cell of structs."""
    cells = np.empty((1, len(entries)), dtype=object)
    for i, (name, box) in enumerate(entries):
        cells[0, i] = {
            "imgName": name,
            "bb_detector": np.array([box], float) + 1.0,
            "bb_ground_truth": np.array([box], float),
        }
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"bounding_boxes": cells})
    return buffer.getvalue()


def test_parse_box_mat_reads_ground_truth_boxes_zero_based():
    data = box_mat_bytes(
        [("image_0001.png", [11.0, 21.0, 111.0, 131.0]), ("a_2.jpg", [1, 2, 3, 4])]
    )
    boxes = ibug.parse_box_mat(data, "bounding_boxes_x.mat")
    assert sorted(boxes) == ["a_2", "image_0001"]
    np.testing.assert_array_equal(boxes["image_0001"], [10.0, 20.0, 110.0, 130.0])


def test_parse_box_mat_errors_name_the_file():
    with pytest.raises(common.DataError, match="bb.mat: not a readable MATLAB"):
        ibug.parse_box_mat(b"garbage", "bb.mat")
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"boxes": np.zeros((2, 4))})
    with pytest.raises(common.DataError, match="bb.mat: no variable 'bounding_boxes'"):
        ibug.parse_box_mat(buffer.getvalue(), "bb.mat")
    data = box_mat_bytes([("a.jpg", [1, 2, 3, 4]), ("b.jpg", [1, 2, 3])])
    with pytest.raises(common.DataError, match=r"bb.mat: entry 2 \(b.jpg\): 3 box values"):
        ibug.parse_box_mat(data, "bb.mat")


def test_examples_follow_the_release(manual_dir):
    examples = dict(ibug.ibug_300w_examples(manual_dir, ("afw", "300W/01_Indoor"), False, "t"))
    # Each .pts is one face, also when two faces share a photo.
    assert sorted(examples) == ["300W/01_Indoor/indoor_001", "afw/134212_1", "afw/134212_2"]
    ex = examples["afw/134212_2"]
    np.testing.assert_array_equal(ex["landmarks"], read_pts(manual_dir / "afw/134212_2.pts"))
    mat = scipy.io.loadmat(io.BytesIO((manual_dir / ibug.box_file("afw")).read_bytes()))
    gt = mat["bounding_boxes"][0][1][0][0]["bb_ground_truth"][0]
    np.testing.assert_allclose(ex["bbox"], gt - 1.0, rtol=1e-6)  # 1-based like the points
    assert ex["subset"] == "afw"
    assert ex["image"].shape == (32, 32, 3)
    # No box file for the 300W private set: the tight box of the landmarks.
    indoor = examples["300W/01_Indoor/indoor_001"]
    pts = indoor["landmarks"]
    np.testing.assert_allclose(indoor["bbox"], [*pts.min(0), *pts.max(0)])


def test_missing_box_file_is_named(manual_dir, tmp_path):
    (manual_dir / ibug.box_file("ibug")).unlink()
    builder = ibug.Builder(config="split2", data_dir=tmp_path / "data")
    config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    with pytest.raises(common.DataError, match="missing Bounding Boxes/bounding_boxes_ibug.mat"):
        builder.download_and_prepare(download_config=config)


def test_missing_subset_folder_is_named(manual_dir, tmp_path):
    shutil.rmtree(manual_dir / "300W")
    builder = ibug.Builder(config="split1", data_dir=tmp_path / "data")
    config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    with pytest.raises(common.DataError, match="missing 300W/01_Indoor, 300W/02_Outdoor"):
        builder.download_and_prepare(download_config=config)


def test_missing_image_is_named(manual_dir):
    (manual_dir / "ibug/image_003_1.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"ibug/image_003_1.pts: no image image_003_1.jpg"):
        dict(ibug.ibug_300w_examples(manual_dir, ("ibug",), True, "t"))


def corrupt_pts(root) -> epath.Path:
    path = root / "afw/134212_2.pts"
    lines = path.read_text().splitlines()
    lines[5] = "12.5 oops"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_corrupt_box_file_is_named_even_when_skipping(manual_dir):
    (manual_dir / ibug.box_file("ibug")).write_bytes(b"not a mat file")
    with pytest.raises(common.DataError, match="bounding_boxes_ibug.mat: not a readable MATLAB"):
        dict(ibug.ibug_300w_examples(manual_dir, ("ibug",), True, "t"))


def test_corrupt_pts_is_named_with_its_line(manual_dir):
    corrupt_pts(manual_dir)
    with pytest.raises(AnnotationError, match=r"afw/134212_2.pts:6: expected two finite numbers"):
        dict(ibug.ibug_300w_examples(manual_dir, ("afw",), False, "t"))


def test_face_without_box_entry_is_named(manual_dir):
    shutil.copy(manual_dir / "afw/134212_2.pts", manual_dir / "afw/134212_3.pts")
    shutil.copy(manual_dir / "afw/134212_2.jpg", manual_dir / "afw/134212_3.jpg")
    with pytest.raises(common.DataError, match=r"bounding_boxes_afw.mat: no box for 134212_3.jpg"):
        dict(ibug.ibug_300w_examples(manual_dir, ("afw",), False, "t"))


def test_skip_corrupt_skips_and_counts(manual_dir, caplog):
    corrupt_pts(manual_dir)
    with caplog.at_level(logging.WARNING):
        examples = dict(ibug.ibug_300w_examples(manual_dir, ("afw", "ibug"), True, "ibug/x"))
    assert sorted(examples) == ["afw/134212_1", "ibug/image_003_1"]
    assert "134212_2.pts:6: expected two finite numbers" in caplog.text
    assert "ibug/x: skipped 1 corrupt example(s) in all" in caplog.text


def test_skip_corrupt_config_builds_the_rest(manual_dir, tmp_path):
    corrupt_pts(manual_dir)
    config = ibug.Ibug300wConfig(name="split2_skip_corrupt", splits=ibug.SPLIT2, skip_corrupt=True)
    builder = ibug.Builder(config=config, data_dir=tmp_path / "data")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=str(manual_dir), compute_stats=tfds.download.ComputeStatsMode.SKIP
        )
    )
    assert builder.info.splits["train"].num_examples == 3
    assert builder.info.splits["test_challenge"].num_examples == 1


if __name__ == "__main__":
    tfds.testing.test_main()
