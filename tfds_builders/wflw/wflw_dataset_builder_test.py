"""Tests for the wflw builder: dummy data in the release's format, values, errors and skips."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath
from hypothesis import given, settings
from hypothesis import strategies as st

from sphm_jax.data.landmark_io import AnnotationError
from tfds_builders import common
from tfds_builders.wflw import wflw_dataset_builder as wflw

DUMMY = epath.Path(__file__).parent / "dummy_data"


class WflwTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = wflw.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["default"]
    SPLITS = {"train": 3, "test": 2}


def make_line(points, box=(1, 2, 30, 31), flags="0 1 0 0 1 0", image="0--Parade/a.jpg") -> str:
    coords = " ".join(f"{v:.6f}" for v in np.ravel(points))
    return f"{coords} {' '.join(map(str, box))} {flags} {image}"


@pytest.fixture
def manual_dir(tmp_path):
    root = tmp_path / "manual"
    shutil.copytree(DUMMY, root)
    return epath.Path(root)


def list_path(root, split: str) -> epath.Path:
    return root / wflw.LISTS[split]


def test_parse_wflw_line_reads_points_box_flags_and_path():
    points = np.arange(196, dtype=np.float64).reshape(98, 2) / 7.0
    face = wflw.parse_wflw_line(make_line(points), "list.txt", 1)
    np.testing.assert_allclose(face.landmarks, points, atol=1e-6)  # 0-based: no shift
    np.testing.assert_array_equal(face.bbox, [1, 2, 30, 31])
    assert face.attributes == {
        "pose": False,
        "expression": True,
        "illumination": False,
        "makeup": False,
        "occlusion": True,
        "blur": False,
    }
    assert face.image == "0--Parade/a.jpg"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f[:-2] + f[-1:], "206 fields, expected 207"),
        (lambda f: f[:5] + ["x1.5"] + f[6:], "field 6 is 'x1.5', not a number"),
        (lambda f: f[:200] + ["2"] + f[201:], "attribute flags must be 0 or 1"),
    ],
)
def test_parse_wflw_line_errors_name_file_and_line(mutate, message):
    fields = make_line(np.zeros((98, 2))).split()
    with pytest.raises(AnnotationError, match=f"list.txt:7: .*{message}"):
        wflw.parse_wflw_line(" ".join(mutate(fields)), "list.txt", 7)


def test_examples_follow_the_list_files(manual_dir):
    lines = list_path(manual_dir, "train").read_text().splitlines()
    examples = dict(wflw.wflw_examples(manual_dir, "train", skip_corrupt=False))
    # Two faces of one image get their own ids.
    assert sorted(examples) == [
        "0--Parade/0_Parade_marchingband_1_116.jpg#0",
        "0--Parade/0_Parade_marchingband_1_116.jpg#1",
        "51--Dresses/51_Dresses_wearingdress_51_377.jpg#0",
    ]
    ex = examples["0--Parade/0_Parade_marchingband_1_116.jpg#1"]
    fields = lines[1].split()
    np.testing.assert_allclose(ex["landmarks"].reshape(-1), np.float32(fields[:196]))
    np.testing.assert_array_equal(ex["bbox"], np.float32(fields[196:200]))
    assert ex["attributes"]["pose"] and ex["attributes"]["occlusion"]
    assert not ex["attributes"]["blur"]
    assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.uint8
    np.testing.assert_array_equal(ex["visible"], np.ones(98))


def test_missing_list_file_is_named(manual_dir, tmp_path):
    list_path(manual_dir, "test").unlink()
    builder = wflw.Builder(data_dir=tmp_path / "data")
    config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    with pytest.raises(common.DataError, match="list_98pt_rect_attr_test.txt"):
        builder.download_and_prepare(download_config=config)


def test_missing_image_is_named_with_its_line(manual_dir):
    (manual_dir / wflw.IMAGE_DIR / "51--Dresses/51_Dresses_wearingdress_51_377.jpg").unlink()
    # A missing file is an incomplete manual_dir: an error even when skipping corrupt examples.
    with pytest.raises(FileNotFoundError, match=r"train.txt:3: image .*51_377.jpg is missing"):
        dict(wflw.wflw_examples(manual_dir, "train", skip_corrupt=True))


def corrupt_second_line(root) -> None:
    path = list_path(root, "train")
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(" ", " oops ", 1)
    path.write_text("\n".join(lines) + "\n")


def test_corrupt_line_is_named_with_its_number(manual_dir):
    corrupt_second_line(manual_dir)
    with pytest.raises(AnnotationError, match=r"list_98pt_rect_attr_train.txt:2: 208 fields"):
        dict(wflw.wflw_examples(manual_dir, "train", skip_corrupt=False))


def test_corrupt_image_is_named_with_its_line(manual_dir):
    (manual_dir / wflw.IMAGE_DIR / "51--Dresses/51_Dresses_wearingdress_51_377.jpg").write_bytes(
        b"not a jpeg"
    )
    with pytest.raises(common.DataError, match=r"train.txt:3: .*51_377.jpg: not a readable image"):
        dict(wflw.wflw_examples(manual_dir, "train", skip_corrupt=False))


def test_skip_corrupt_skips_and_counts(manual_dir, caplog):
    corrupt_second_line(manual_dir)
    with caplog.at_level(logging.WARNING):
        examples = dict(wflw.wflw_examples(manual_dir, "train", skip_corrupt=True))
    assert len(examples) == 2
    assert "train.txt:2: 208 fields" in caplog.text
    assert "wflw/train: skipped 1 corrupt example(s) in all" in caplog.text


def test_skip_corrupt_config_builds_the_rest(manual_dir, tmp_path):
    corrupt_second_line(manual_dir)
    config = common.LandmarkConfig(name="default_skip_corrupt", skip_corrupt=True)
    builder = wflw.Builder(config=config, data_dir=tmp_path / "data")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=str(manual_dir), compute_stats=tfds.download.ComputeStatsMode.SKIP
        )
    )
    assert builder.info.splits["train"].num_examples == 2
    assert builder.info.splits["test"].num_examples == 2


if __name__ == "__main__":
    tfds.testing.test_main()


def test_a_list_file_that_is_not_text_is_named(manual_dir):
    list_path(manual_dir, "train").write_bytes(b"1.0 2.0 \xff\xfe\x00 broken")
    with pytest.raises(AnnotationError, match=r"list_98pt_rect_attr_train.txt: not a text file"):
        list(wflw.wflw_examples(manual_dir, "train", skip_corrupt=False))


# Tokens a damaged or hand-edited list may hold where a number or a flag belongs.
TOKENS = ["nan", "-inf", "inf", "1e400", "-3.5", "0", "1", "2", "abc", "0x10", "1_0", "١٢", "."]
EDITS = st.lists(
    st.tuples(
        st.sampled_from(["replace", "delete", "insert"]),
        st.integers(0, 206),
        st.sampled_from(TOKENS),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(EDITS)
def test_edited_lines_give_a_valid_example_or_an_error_naming_the_line(edits):
    points = np.random.default_rng(0).uniform(0, 40, (98, 2))
    fields = make_line(points).split()
    for kind, i, token in edits:
        i = min(i, len(fields) - 1)
        if kind == "replace":
            fields[i] = token
        elif kind == "delete":
            del fields[i]
        else:
            fields.insert(i, token)
    try:
        face = wflw.parse_wflw_line(" ".join(fields), "list.txt", 7)
        example = common.make_example(
            np.zeros((48, 48, 3), np.uint8), face.landmarks, "list.txt:7", bbox=face.bbox
        )
    except (AnnotationError, common.DataError) as err:
        assert "list.txt:7" in str(err)
        return
    # The rules of common.py: non-finite points are invisible at (0, 0); the box is proper.
    assert np.all(np.isfinite(example["landmarks"]))
    assert set(np.unique(example["visible"])) <= {0.0, 1.0}
    np.testing.assert_array_equal(example["landmarks"][example["visible"] == 0], 0.0)
    x0, y0, x1, y1 = example["bbox"]
    assert np.all(np.isfinite(example["bbox"])) and x1 > x0 and y1 > y0
