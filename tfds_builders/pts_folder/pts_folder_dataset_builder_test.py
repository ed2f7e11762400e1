"""Tests for the pts_folder builder: pairing, splits, boxes, K, and points = file - 1."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from sphm_jax.data.landmark_io import AnnotationError
from tfds_builders import common
from tfds_builders.pts_folder import pts_folder_dataset_builder as pts_folder

# image path: (size, number of points); each gets a same-stem .pts.
DUMMY_FACES = {
    "train/a.jpg": ((30, 40), 68),
    "train/people/b.png": ((28, 36), 68),
    "test/c.jpg": ((32, 32), 68),
    "test/d.jpeg": ((26, 30), 68),
}
DUMMY_BOXES_JSON = {"train/a.jpg": [2.0, 3.0, 30.0, 27.0]}
DUMMY_BOXES_CSV = "image,x_min,y_min,x_max,y_max\nc,1.5,2.5,29,30\n"


def pts_text(points_1_based: np.ndarray) -> str:
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points_1_based)
    return f"version: 1\nn_points: {len(points_1_based)}\n{{\n{body}\n}}\n"


def write_faces(root, faces=DUMMY_FACES, seed: int = 0) -> None:
    """Images with random content and .pts files with random 1-based points."""
    rng = np.random.default_rng(seed)
    for relative, ((height, width), k) in faces.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        points = rng.uniform(1.0, min(height, width), (k, 2))
        path.with_suffix(".pts").write_text(pts_text(points))


def write_dummy(root) -> None:
    write_faces(root)
    (root / pts_folder.BOX_JSON).write_text(json.dumps(DUMMY_BOXES_JSON))
    (root / pts_folder.BOX_CSV).write_text(DUMMY_BOXES_CSV)


def points_in_file(path) -> np.ndarray:
    """The numbers between the braces of a .pts file, as written (1-based)."""
    text = path.read_text()
    body = text[text.index("{") + 1 : text.rindex("}")]
    return np.array([[float(v) for v in line.split()] for line in body.split("\n") if line.strip()])


class PtsFolderTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = pts_folder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["landmarks68", "auto"]
    SPLITS = {"train": 2, "test": 2}


def build(manual_dir, tmp_path, config="landmarks68", split="train") -> dict:
    """{image_id: example} of a split, built and read back through TFDS."""
    builder = pts_folder.Builder(config=config, data_dir=tmp_path / "out")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    examples = tfds.as_numpy(builder.as_dataset(split=split))
    return {ex["image_id"].decode(): ex for ex in examples}


def test_landmarks_are_the_files_points_minus_one(tmp_path):
    dummy = pts_folder.Builder.code_path.parent / "dummy_data"
    examples = build(dummy, tmp_path) | build(dummy, tmp_path, split="test")
    assert sorted(examples) == sorted(DUMMY_FACES)
    for image_id, ex in examples.items():
        expected = points_in_file((dummy / image_id).with_suffix(".pts")).astype(np.float32) - 1.0
        np.testing.assert_allclose(ex["landmarks"], expected, atol=1e-6)
        np.testing.assert_array_equal(ex["visible"], np.ones(68))
        assert ex["image"].shape == (*DUMMY_FACES[image_id][0], 3)
    np.testing.assert_allclose(examples["train/a.jpg"]["bbox"], DUMMY_BOXES_JSON["train/a.jpg"])
    np.testing.assert_allclose(examples["test/c.jpg"]["bbox"], [1.5, 2.5, 29, 30])
    b = examples["train/people/b.png"]
    tight = np.concatenate([b["landmarks"].min(0), b["landmarks"].max(0)])
    np.testing.assert_allclose(b["bbox"], tight)
    assert b["folder"] == b"train/people"


def test_without_split_folders_everything_is_train(tmp_path):
    write_faces(tmp_path / "data", {"x.png": ((20, 20), 68), "sub/y.jpg": ((20, 24), 68)})
    planned = pts_folder.plan(tmp_path / "data", 68, skip_corrupt=False)
    assert list(planned["splits"]) == ["train"]
    keys = [k for k, _ in pts_folder.split_examples(tmp_path / "data", "train", planned, False)]
    assert keys == ["sub/y.jpg", "x.png"]


def test_another_k_by_config(tmp_path):
    write_faces(tmp_path / "data", {"x.png": ((20, 20), 98)})
    ex = build(tmp_path / "data", tmp_path, config="landmarks98")["x.png"]
    assert ex["landmarks"].shape == (98, 2)
    custom = pts_folder.PtsFolderConfig(name="landmarks5", num_landmarks=5)
    with pytest.raises(AnnotationError, match=r"x.pts: has 98 points, expected 5"):
        build(tmp_path / "data", tmp_path, config=custom)


def test_auto_k_requires_every_file_to_agree(tmp_path):
    root = tmp_path / "data"
    write_faces(root, {"a.png": ((20, 20), 5), "b.png": ((20, 20), 5), "c.png": ((20, 20), 6)})
    planned = pts_folder.plan(root, None, skip_corrupt=False)
    assert planned["num_landmarks"] == 5 and planned["reference"] == "a.pts"
    with pytest.raises(AnnotationError, match=r"c.pts: has 6 points, but a.pts .* has 5"):
        list(pts_folder.split_examples(root, "train", planned, skip_corrupt=False))
    with pytest.raises(AnnotationError, match=r"c.pts: has 6 points"):
        build(root, tmp_path, config="auto")


def test_lone_files_are_reported_or_skipped_and_counted(tmp_path, caplog):
    root = tmp_path / "data"
    write_dummy(root)
    (root / "train/people/b.pts").unlink()
    (root / "test/c.jpg").unlink()
    write_faces(root, {"stray.jpg": ((20, 20), 68)})  # a pair outside train/ and test/
    planned = pts_folder.plan(root, 68, skip_corrupt=True)
    with pytest.raises(
        common.DataError, match=r"stray.jpg: outside the split folders train/, test/"
    ):
        list(pts_folder.split_examples(root, "train", planned, skip_corrupt=False))
    with pytest.raises(common.DataError, match=r"test/c.pts: no image beside it"):
        list(pts_folder.split_examples(root, "test", planned, skip_corrupt=False))
    train = [k for k, _ in pts_folder.split_examples(root, "train", planned, skip_corrupt=True)]
    assert train == ["train/a.jpg"]
    assert "train/people/b.png: no .pts file beside it" in caplog.text
    assert "pts_folder/train: skipped 2 corrupt example(s)" in caplog.text
    assert "c' names no image" in caplog.text  # the box of the deleted image


def test_two_images_for_one_pts_are_ambiguous(tmp_path):
    root = tmp_path / "data"
    write_faces(root, {"a.png": ((20, 20), 68), "b.png": ((20, 20), 68)})
    Image.new("RGB", (20, 20)).save(root / "a.jpg")
    planned = pts_folder.plan(root, 68, skip_corrupt=False)
    with pytest.raises(common.DataError, match=r"a.jpg, a.png, a.pts: ambiguous"):
        list(pts_folder.split_examples(root, "train", planned, skip_corrupt=False))
    assert [k for k, _ in pts_folder.split_examples(root, "train", planned, True)] == ["b.png"]


def test_corrupt_image_and_pts_are_named(tmp_path, caplog):
    root = tmp_path / "data"
    write_dummy(root)
    (root / "test/c.jpg").write_bytes(b"not a jpeg")
    lines = (root / "test/d.pts").read_text().splitlines()
    lines[5] = "12.0"  # the third point line
    (root / "test/d.pts").write_text("\n".join(lines))
    planned = pts_folder.plan(root, 68, skip_corrupt=False)
    with pytest.raises(common.DataError, match=r"test/c.jpg: not a readable image"):
        list(pts_folder.split_examples(root, "test", planned, skip_corrupt=False))
    (root / "test/c.jpg").unlink()
    (root / "test/c.pts").unlink()
    planned = pts_folder.plan(root, 68, skip_corrupt=True)
    with pytest.raises(AnnotationError, match=r"test/d.pts:6: expected two finite numbers"):
        list(pts_folder.split_examples(root, "test", planned, skip_corrupt=False))
    assert list(pts_folder.split_examples(root, "test", planned, skip_corrupt=True)) == []
    assert "skipped 1 corrupt example(s)" in caplog.text


@pytest.mark.parametrize(
    "name,text,message",
    [
        (
            "boxes.csv",
            "image,x_min,y_min,x_max,y_max\na,1,2,3\n",
            r"boxes.csv:2: expected 5 fields",
        ),
        ("boxes.csv", "image,x_min,y_min,x_max,y_max\na,5,2,3,4\n", r"boxes.csv:2: expected x_min"),
        ("boxes.csv", "name,x0,y0,x1,y1\n", r"boxes.csv:1: expected the header"),
        ("boxes.json", '{"a": [1, 2, 3', r"boxes.json:1: not valid JSON"),
        ("boxes.json", '{"nobody": [1, 2, 3, 4]}', r"boxes.json: box 'nobody' names no image"),
    ],
)
def test_bad_boxes_are_named(tmp_path, name, text, message):
    root = tmp_path / "data"
    write_faces(root, {"a.png": ((20, 20), 68)})
    (root / name).write_text(text)
    with pytest.raises(common.DataError, match=message):
        pts_folder.plan(root, 68, skip_corrupt=False)


def test_missing_or_empty_manual_dir_is_named(tmp_path):
    with pytest.raises(common.DataError, match=r"missing_dir does not exist"):
        pts_folder.plan(tmp_path / "missing_dir", 68, skip_corrupt=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/photo.jpg").write_bytes(b"")
    with pytest.raises(common.DataError, match=r"empty has no .pts file"):
        pts_folder.plan(tmp_path / "empty", 68, skip_corrupt=False)


if __name__ == "__main__":
    # Regenerates dummy_data/ (run from the repository root).
    target = pts_folder.Builder.code_path.parent / "dummy_data"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    write_dummy(target)
