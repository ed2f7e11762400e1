"""Tests for the cofw builder: dummy data in the release's formats, values, errors and skips."""

from __future__ import annotations

import shutil
from unittest import mock

import h5py
import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds

from tfds_builders import common
from tfds_builders.cofw import cofw_dataset_builder as cofw

DUMMY_COUNTS = {"train": 3, "test": 3}
MAT73_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 "
    b"HDF5 schema 1.00 .".ljust(116, b" ")
    + b"\0" * 8
    + b"\x00\x02IM"
)


def write_mat73(path, cells: dict, matrices: dict) -> None:
    """A MATLAB v7.3 file: cells {name: [arrays]} as N x 1 cells, matrices {name: 2-D array}."""
    with h5py.File(path, "w", userblock_size=512) as mat:
        refs = mat.create_group("#refs#")
        for name, arrays in cells.items():
            cell = mat.create_dataset(name, shape=(1, len(arrays)), dtype=h5py.ref_dtype)
            cell.attrs["MATLAB_class"] = np.bytes_("cell")
            for i, array in enumerate(arrays):
                # MATLAB writes column-major: h5py sees every array transposed.
                item = refs.create_dataset(f"{name}_{i}", data=np.asarray(array).T)
                item.attrs["MATLAB_class"] = np.bytes_(str(np.asarray(array).dtype))
                cell[0, i] = item.ref
        for name, matrix in matrices.items():
            item = mat.create_dataset(name, data=np.asarray(matrix, np.float64).T)
            item.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as fobj:
        fobj.write(MAT73_HEADER)


def fake_split(rng, split: str, count: int):
    """Images (the second one grey), 87-column shapes (1-based) and x, y, w, h boxes."""
    images = [rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8) for i in range(count)]
    images[1] = images[1][..., 0]
    xy = rng.uniform(2.0, 19.0, (count, 2, 29)).reshape(count, 58)
    occlusion = rng.integers(0, 2, (count, 29)).astype(np.float64)
    phis = np.concatenate([xy, occlusion], axis=1)
    boxes = np.tile([2.0, 3.0, 16.0, 15.0], (count, 1)) + np.arange(count)[:, None]
    return images, phis, boxes


def write_cofw(root, seed: int = 0, counts=DUMMY_COUNTS) -> dict:
    """The two *_color.mat files and the COFW68_Data folder; returns what was written."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, count in counts.items():
        images, phis, boxes = fake_split(rng, split, count)
        write_mat73(
            root / cofw.MAT_FILES[split],
            {cofw.IMAGE_VARS[split]: images},
            {cofw.SHAPE_VARS[split]: phis, cofw.BOX_VARS[split]: boxes},
        )
        written[split] = (images, phis, boxes)
    (root / "COFW68_Data" / "test_annotations").mkdir(parents=True, exist_ok=True)
    points68 = rng.uniform(2.0, 19.0, (counts["test"], 68, 2))
    occ68 = rng.integers(0, 2, (counts["test"], 68)).astype(np.float64)
    for i in range(counts["test"]):
        scipy.io.savemat(
            root / cofw.COFW68_POINTS.format(index=i + 1), {"Points": points68[i], "Occ": occ68[i]}
        )
    boxes68 = np.tile([1.0, 2.0, 18.0, 17.0], (counts["test"], 1))
    scipy.io.savemat(root / cofw.COFW68_BOXES, {"bboxes": boxes68})
    written["cofw68"] = (points68, occ68, boxes68)
    return written


@mock.patch.dict(cofw.NUM_IMAGES, DUMMY_COUNTS)
class Cofw29Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = cofw.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["cofw29"]
    SPLITS = {"train": 3, "test": 3}


@mock.patch.dict(cofw.NUM_IMAGES, DUMMY_COUNTS)
class Cofw68Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = cofw.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["cofw68"]
    SPLITS = {"test": 3}


@pytest.fixture
def counts():
    with mock.patch.dict(cofw.NUM_IMAGES, DUMMY_COUNTS):
        yield


@pytest.fixture
def manual_dir(tmp_path, counts):
    written = write_cofw(tmp_path)
    return tmp_path, written


def test_cofw29_values_follow_the_release(manual_dir):
    root, written = manual_dir
    images, phis, boxes = written["train"]
    examples = dict(cofw.cofw29_examples(root, "train", skip_corrupt=False))
    assert sorted(examples) == ["train/0001", "train/0002", "train/0003"]
    for i, key in enumerate(sorted(examples)):
        ex = examples[key]
        expected_image = (
            images[i] if images[i].ndim == 3 else np.repeat(images[i][..., None], 3, -1)
        )
        np.testing.assert_array_equal(ex["image"], expected_image)
        np.testing.assert_allclose(ex["landmarks"][:, 0], phis[i, :29] - 1, rtol=1e-6)
        np.testing.assert_allclose(ex["landmarks"][:, 1], phis[i, 29:58] - 1, rtol=1e-6)
        np.testing.assert_array_equal(ex["occluded"], phis[i, 58:] == 1)
        np.testing.assert_array_equal(ex["visible"], np.ones(29))
        x, y, w, h = boxes[i]
        np.testing.assert_allclose(ex["bbox"], [x - 1, y - 1, x - 1 + w, y - 1 + h])


def test_cofw68_values_follow_the_release(manual_dir):
    root, written = manual_dir
    points, occ, _ = written["cofw68"]
    examples = dict(cofw.cofw68_examples(root, skip_corrupt=False))
    ex = examples["test/0002"]
    np.testing.assert_allclose(ex["landmarks"], points[1] - 1, rtol=1e-6)
    np.testing.assert_array_equal(ex["occluded"], occ[1] == 1)
    np.testing.assert_allclose(ex["bbox"], [0.0, 1.0, 18.0, 18.0])
    assert ex["image"].shape == (21, 24, 3)


def test_missing_file_is_named(tmp_path, counts):
    write_cofw(tmp_path)
    (tmp_path / "COFW_test_color.mat").unlink()
    builder = cofw.Builder(config="cofw29", data_dir=tmp_path / "out")
    config = tfds.download.DownloadConfig(manual_dir=tmp_path)
    with pytest.raises(common.DataError, match="missing COFW_test_color.mat"):
        builder.download_and_prepare(download_config=config)


def test_missing_cofw68_annotation_is_named(tmp_path, counts):
    write_cofw(tmp_path)
    (tmp_path / "COFW68_Data/test_annotations/2_points.mat").unlink()
    builder = cofw.Builder(config="cofw68", data_dir=tmp_path / "out")
    config = tfds.download.DownloadConfig(manual_dir=tmp_path)
    with pytest.raises(common.DataError, match="missing COFW68_Data/test_annotations/2_points"):
        builder.download_and_prepare(download_config=config)


def corrupt(root, split: str, image=None, phis_row=None):
    """Rewrites a split's .mat file with its 2nd image and/or 2nd shape row replaced."""
    images, phis, boxes = fake_split(np.random.default_rng(1), split, DUMMY_COUNTS[split])
    if image is not None:
        images[1] = image
    if phis_row is not None:
        phis[1] = phis_row
    write_mat73(
        root / cofw.MAT_FILES[split],
        {cofw.IMAGE_VARS[split]: images},
        {cofw.SHAPE_VARS[split]: phis, cofw.BOX_VARS[split]: boxes},
    )


def test_corrupt_image_raises_or_is_skipped_and_counted(manual_dir, caplog):
    root, _ = manual_dir
    corrupt(root, "train", image=np.zeros((4, 5, 6, 7), np.uint8))
    with pytest.raises(common.DataError, match=r"COFW_train_color.mat IsTr\{2\}.*not an image"):
        list(cofw.cofw29_examples(root, "train", skip_corrupt=False))
    examples = list(cofw.cofw29_examples(root, "train", skip_corrupt=True))
    assert [key for key, _ in examples] == ["train/0001", "train/0003"]
    assert "skipped 1 corrupt example(s)" in caplog.text


def test_corrupt_shape_row_names_file_and_row(manual_dir, caplog):
    root, _ = manual_dir
    row = np.concatenate([np.full(58, 5.0), np.full(29, 2.0)])
    corrupt(root, "test", phis_row=row)
    with pytest.raises(common.DataError, match=r"COFW_test_color.mat row 2 of 'phisT'.*0 or 1"):
        list(cofw.cofw29_examples(root, "test", skip_corrupt=False))
    assert len(list(cofw.cofw29_examples(root, "test", skip_corrupt=True))) == 2
    assert "skipped 1 corrupt example(s)" in caplog.text


def test_corrupt_cofw68_annotation_is_named(manual_dir):
    root, _ = manual_dir
    path = root / cofw.COFW68_POINTS.format(index=3)
    scipy.io.savemat(path, {"Points": np.zeros((68, 2))})
    with pytest.raises(common.DataError, match=r"3_points.mat: no variable 'Occ'"):
        list(cofw.cofw68_examples(root, skip_corrupt=False))
    path.write_bytes(b"not a mat file")
    with pytest.raises(common.DataError, match=r"3_points.mat: not a readable MATLAB v5"):
        list(cofw.cofw68_examples(root, skip_corrupt=False))


def test_wrong_image_count_is_an_incomplete_download(manual_dir):
    root, _ = manual_dir
    expected = r"COFW_train_color.mat: 3 images, expected 1345"
    with (
        mock.patch.dict(cofw.NUM_IMAGES, {"train": 1345}),
        pytest.raises(common.DataError, match=expected),
    ):
        list(cofw.cofw29_examples(root, "train", skip_corrupt=False))


def test_a_v5_or_garbage_file_is_named(manual_dir):
    root, _ = manual_dir
    scipy.io.savemat(root / "COFW_train_color.mat", {"IsTr": np.zeros((2, 2))})
    with pytest.raises(common.DataError, match=r"COFW_train_color.mat: not a MATLAB v7.3"):
        list(cofw.cofw29_examples(root, "train", skip_corrupt=False))


def test_dummy_data_is_the_real_layout():
    dummy = cofw.Builder.code_path.parent / "dummy_data"
    with h5py.File(dummy / "COFW_train_color.mat", "r") as mat:
        assert mat["IsTr"].dtype == h5py.ref_dtype and mat["phisTr"].shape == (87, 3)
    assert (dummy / "COFW_train_color.mat").read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    assert "Points" in scipy.io.loadmat(dummy / "COFW68_Data/test_annotations/1_points.mat")


if __name__ == "__main__":
    # Regenerates dummy_data/ (run from the repository root).
    target = cofw.Builder.code_path.parent / "dummy_data"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    write_cofw(target, counts=DUMMY_COUNTS)
