"""Tests for the ibug_300w_lp builder: dummy data in the release's formats, values, errors."""

from __future__ import annotations

import io
import logging
import shutil

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import common
from tfds_builders.ibug_300w_lp import ibug_300w_lp_dataset_builder as lp

DUMMY = epath.Path(__file__).parent / "dummy_data"
AFW_MAT = "300W_LP/landmarks/AFW/AFW_134212_1_3_pts.mat"


class Pts2dTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = lp.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["pts_2d"]
    SPLITS = {"train": 5}


class Pts3dTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = lp.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["pts_3d"]
    SPLITS = {"train": 5}


@pytest.fixture
def manual_dir(tmp_path):
    root = tmp_path / "manual"
    shutil.copytree(DUMMY, root)
    return epath.Path(root)


def mat_bytes(**variables) -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, variables)
    return buffer.getvalue()


def test_parse_lp_mat_reads_either_variable_zero_based():
    pts_2d, pts_3d = np.full((68, 2), 5.0), np.full((68, 2), 7.5)
    data = mat_bytes(pts_2d=pts_2d, pts_3d=pts_3d)
    np.testing.assert_array_equal(lp.parse_lp_mat(data, "a_pts.mat", "pts_2d"), pts_2d - 1)
    np.testing.assert_array_equal(lp.parse_lp_mat(data, "a_pts.mat", "pts_3d"), pts_3d - 1)


def test_parse_lp_mat_errors_name_the_file():
    with pytest.raises(common.DataError, match="a_pts.mat: not a readable MATLAB"):
        lp.parse_lp_mat(b"\x00" * 200, "a_pts.mat", "pts_2d")
    with pytest.raises(
        common.DataError, match=r"a_pts.mat: no variable 'pts_3d' \(has \['pts_2d'\]"
    ):
        lp.parse_lp_mat(mat_bytes(pts_2d=np.zeros((68, 2))), "a_pts.mat", "pts_3d")
    with pytest.raises(common.DataError, match=r"'pts_2d' has shape \(2, 68\), expected \(68, 2\)"):
        lp.parse_lp_mat(mat_bytes(pts_2d=np.zeros((2, 68))), "a_pts.mat", "pts_2d")


def test_examples_follow_the_release(manual_dir):
    examples = dict(lp.ibug_300w_lp_examples(manual_dir, "pts_3d", skip_corrupt=False))
    # The AFW_Flip image is not read.
    assert sorted(examples) == [
        "AFW/AFW_134212_1_0",
        "AFW/AFW_134212_1_3",
        "HELEN/HELEN_100032540_1_0",
        "IBUG/IBUG_image_003_1_2",
        "LFPW/LFPW_image_train_0001_0",
    ]
    ex = examples["AFW/AFW_134212_1_3"]
    mat = scipy.io.loadmat(io.BytesIO((manual_dir / AFW_MAT).read_bytes()))
    np.testing.assert_allclose(ex["landmarks"], mat["pts_3d"] - 1, rtol=1e-6)
    pts = ex["landmarks"]
    np.testing.assert_allclose(ex["bbox"], [*pts.min(0), *pts.max(0)])
    assert ex["subset"] == "AFW"
    assert ex["image"].shape == (32, 32, 3)


def test_flipped_folders_are_logged(manual_dir, tmp_path, caplog):
    builder = lp.Builder(data_dir=tmp_path / "data")
    config = tfds.download.DownloadConfig(
        manual_dir=str(manual_dir), compute_stats=tfds.download.ComputeStatsMode.SKIP
    )
    with caplog.at_level(logging.WARNING):
        builder.download_and_prepare(download_config=config)
    assert "not reading 300W_LP/AFW_Flip" in caplog.text
    assert builder.info.splits["train"].num_examples == 5


def test_missing_landmark_folder_is_named(manual_dir, tmp_path):
    shutil.rmtree(manual_dir / "300W_LP/landmarks/IBUG")
    builder = lp.Builder(data_dir=tmp_path / "data")
    config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    with pytest.raises(common.DataError, match="missing 300W_LP/landmarks/IBUG"):
        builder.download_and_prepare(download_config=config)


def test_missing_landmark_file_is_named(manual_dir):
    (manual_dir / AFW_MAT).unlink()
    with pytest.raises(FileNotFoundError, match=r"AFW_134212_1_3.jpg: its landmarks .*_3_pts.mat"):
        dict(lp.ibug_300w_lp_examples(manual_dir, "pts_2d", skip_corrupt=True))


def test_corrupt_landmark_file_is_named(manual_dir):
    (manual_dir / AFW_MAT).write_bytes(mat_bytes(pts_2d=np.zeros((67, 2))))
    with pytest.raises(common.DataError, match=r"AFW_134212_1_3_pts.mat: 'pts_2d' has shape"):
        dict(lp.ibug_300w_lp_examples(manual_dir, "pts_2d", skip_corrupt=False))


def test_skip_corrupt_skips_and_counts(manual_dir, caplog):
    (manual_dir / AFW_MAT).write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        examples = dict(lp.ibug_300w_lp_examples(manual_dir, "pts_2d", skip_corrupt=True))
    assert len(examples) == 4 and "AFW/AFW_134212_1_3" not in examples
    assert "AFW_134212_1_3_pts.mat: not a readable MATLAB" in caplog.text
    assert "ibug_300w_lp/pts_2d: skipped 1 corrupt example(s) in all" in caplog.text


if __name__ == "__main__":
    tfds.testing.test_main()
