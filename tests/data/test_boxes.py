"""Tests for sphm_jax.data.boxes: box files that parse or name the file and entry, and bad boxes."""

import json

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

from sphm_jax.data import boxes


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("b.json", "{not json", "not valid JSON"),
        ("b.json", '{"a.png": [1, 2, 3]}', "4 numbers"),
        ("b.json", '{"a.png": ["x", 2, 3, 4]}', "must be numbers"),
        ("b.json", '[{"image": "a.png"}]', "record 0 needs"),
        ("b.csv", "image,x_min,y_min\na.png,1,2\n", "lacks the column"),
        ("b.csv", "image,x_min,y_min,x_max,y_max\na.png,1,2,z,4\n", "line 2"),
        ("b.txt", "", "is .json or .csv"),
    ],
)
def test_bad_box_files_name_the_file_and_entry(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(boxes.InputError, match=message) as err:
        boxes.read_boxes(tmp_path / name)
    assert name in str(err.value)


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(
    text=st.one_of(
        st.text(max_size=200),
        st.builds(
            json.dumps,
            st.recursive(
                st.none() | st.booleans() | st.floats() | st.text(max_size=5),
                lambda c: (
                    st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=5), c, max_size=4)
                ),
                max_leaves=20,
            ),
        ),
    ),
    suffix=st.sampled_from([".json", ".csv"]),
)
def test_box_file_fuzz_parses_or_names_the_file(tmp_path_factory, text, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"boxes{suffix}"
    path.write_text(text)
    try:
        found = boxes.read_boxes(path)
    except boxes.InputError as err:
        assert str(path) in str(err)
        return
    for name, faces in found.items():  # what parses is exactly lists of 4 floats
        assert isinstance(name, str)
        assert all(len(b) == 4 and all(isinstance(v, float) for v in b) for b in faces)


@pytest.mark.parametrize(
    "box, message",
    [
        ([10, 10, 10, 20], "degenerate"),
        ([10, 30, 20, 20], "degenerate"),
        ([np.nan, 0, 5, 5], "finite"),
        ([200, 10, 260, 50], "outside"),
        ([-50, -50, -1, -1], "outside"),
    ],
)
def test_bad_boxes_are_refused(box, message):
    with pytest.raises(boxes.InputError, match=message):
        boxes.check_box(box, 60, 80, "img.png: box 0")
    boxes.check_box([-20, -20, 5, 5], 60, 80, "partly outside is fine")


def test_match_takes_the_nearest_detection_of_the_right_size_once():
    faces = np.float32([[0, 0, 100, 100], [200, 0, 300, 100]])
    dets = np.float32(
        [
            [10, 10, 110, 110],  # face 0, centre 10 px off
            [0, 0, 100, 100],  # face 0 exactly: wins
            [190, -10, 310, 110],  # face 1
            [240, 40, 260, 60],  # centre inside face 1 but 5x too small
            [400, 0, 500, 100],  # nothing there
        ]
    )
    np.testing.assert_array_equal(boxes.match(dets, faces), [1, 2])
    np.testing.assert_array_equal(boxes.match(dets[3:], faces), [-1, -1])
    np.testing.assert_array_equal(boxes.match(np.zeros((0, 4)), faces), [-1, -1])


def test_nms_keeps_the_best_of_overlapping_boxes():
    given = np.float32([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]])
    kept, scores = boxes.nms(given, np.float32([0.5, 0.9, 0.1]))
    np.testing.assert_array_equal(kept, given[[1, 2]])
    np.testing.assert_allclose(scores, [0.9, 0.1], rtol=1e-6)
    np.testing.assert_allclose(boxes.iou(given[:1], given[1:2]), [[81 / 119]])
