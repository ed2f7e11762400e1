"""Tests for the menpo builder: dummy data in the release's format, values, errors and skips."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath

from sphm_jax.data.landmark_io import AnnotationError, format_pts, read_pts
from tfds_builders import common
from tfds_builders.menpo import menpo_dataset_builder as menpo

DUMMY = epath.Path(__file__).parent / "dummy_data"
NO_STATS = tfds.download.ComputeStatsMode.SKIP


class Frontal68Test(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = menpo.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["frontal68"]
    SPLITS = {"train": 3, "test": 1}


@pytest.fixture
def manual_dir(tmp_path):
    root = tmp_path / "manual"
    shutil.copytree(DUMMY, root)
    return epath.Path(root)


def prepare(manual_dir, tmp_path, config="frontal68"):
    builder = menpo.Builder(config=config, data_dir=tmp_path / "data")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=str(manual_dir), compute_stats=NO_STATS
        )
    )
    return builder


def test_examples_keep_68_point_faces_and_count_profiles(manual_dir, caplog):
    with caplog.at_level(logging.WARNING):
        examples = dict(menpo.menpo_examples(manual_dir / "trainset", False, "menpo/train"))
    assert sorted(examples) == [
        "trainset/aflw__face_39862",
        "trainset/aflw__face_40001",
        "trainset/fddb__face_0101",
    ]
    assert "menpo/train: 1 of 4 faces are 39-point profiles, left out" in caplog.text
    ex = examples["trainset/aflw__face_40001"]  # a .png image
    pts = read_pts(manual_dir / "trainset/aflw__face_40001.pts")
    np.testing.assert_array_equal(ex["landmarks"], pts)
    np.testing.assert_allclose(ex["bbox"], [*pts.min(0), *pts.max(0)])
    assert ex["image"].shape == (32, 32, 3)


def test_release_without_test_annotations_has_train_only(manual_dir, tmp_path, caplog):
    for pts in (manual_dir / "testset").glob("*.pts"):
        pts.unlink()
    with caplog.at_level(logging.WARNING):
        builder = prepare(manual_dir, tmp_path)
    assert list(builder.info.splits) == ["train"]
    assert "testset has no .pts files, so there is no test split" in caplog.text


def test_missing_trainset_is_named(manual_dir, tmp_path):
    shutil.rmtree(manual_dir / "trainset")
    with pytest.raises(common.DataError, match="missing trainset"):
        prepare(manual_dir, tmp_path)


def test_missing_image_is_named(manual_dir):
    (manual_dir / "trainset/fddb__face_0101.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"fddb__face_0101.pts: no image fddb__face_0101"):
        dict(menpo.menpo_examples(manual_dir / "trainset", True, "t"))


def corrupt_pts(root) -> None:
    path = root / "trainset/aflw__face_39862.pts"
    lines = path.read_text().splitlines()
    lines[10] = "1.0 2.0 3.0"
    path.write_text("\n".join(lines) + "\n")


def test_corrupt_pts_is_named_with_its_line(manual_dir):
    corrupt_pts(manual_dir)
    with pytest.raises(AnnotationError, match=r"aflw__face_39862.pts:11: expected two finite"):
        dict(menpo.menpo_examples(manual_dir / "trainset", False, "t"))


def test_other_point_counts_are_corrupt(manual_dir):
    (manual_dir / "trainset/aflw__face_39862.pts").write_text(format_pts(np.ones((5, 2))))
    with pytest.raises(AnnotationError, match="has 5 points, expected 68 .* or 39"):
        dict(menpo.menpo_examples(manual_dir / "trainset", False, "t"))


def test_skip_corrupt_skips_and_counts(manual_dir, caplog):
    corrupt_pts(manual_dir)
    with caplog.at_level(logging.WARNING):
        examples = dict(menpo.menpo_examples(manual_dir / "trainset", True, "menpo/train"))
    assert sorted(examples) == ["trainset/aflw__face_40001", "trainset/fddb__face_0101"]
    assert "aflw__face_39862.pts:11: expected two finite" in caplog.text
    assert "menpo/train: skipped 1 corrupt example(s) in all" in caplog.text


def test_skip_corrupt_config_builds_the_rest(manual_dir, tmp_path):
    corrupt_pts(manual_dir)
    config = common.LandmarkConfig(name="frontal68_skip_corrupt", skip_corrupt=True)
    builder = prepare(manual_dir, tmp_path, config)
    assert builder.info.splits["train"].num_examples == 2
    assert builder.info.splits["test"].num_examples == 1


if __name__ == "__main__":
    tfds.testing.test_main()
