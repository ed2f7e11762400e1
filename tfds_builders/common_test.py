"""Hostile input for the shared builder code: the .mat v5 readers, and the example rules of common.py."""

import functools
import os
import struct
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfds_builders import common
from tfds_builders.aflw import aflw_dataset_builder as aflw
from tfds_builders.cofw import cofw_dataset_builder as cofw
from tfds_builders.ibug_300w import ibug_300w_dataset_builder as ibug_300w
from tfds_builders.ibug_300w_lp import ibug_300w_lp_dataset_builder as ibug_300w_lp

HERE = os.path.dirname(os.path.abspath(__file__))


def read_aflw(data, name):
    """The AFLW release reader, sized for the six faces of its dummy file."""
    with mock.patch.object(aflw, "NUM_FACES", 6):
        return aflw.release_arrays(common.load_mat5(data, name), name)


# Every reader of a v5 .mat file, with a dummy file of its own to mutate.
READERS = {
    "aflw": ("aflw/dummy_data/AFLWinfo_release.mat", read_aflw),
    "cofw68_points": (
        "cofw/dummy_data/COFW68_Data/test_annotations/1_points.mat",
        cofw.parse_points_mat,
    ),
    "cofw68_boxes": (
        "cofw/dummy_data/COFW68_Data/cofw68_test_bboxes.mat",
        lambda data, name: common.mat_numeric(common.load_mat5(data, name), "bboxes", name),
    ),
    "300w_boxes": (
        "ibug_300w/dummy_data/Bounding Boxes/bounding_boxes_afw.mat",
        ibug_300w.parse_box_mat,
    ),
    "300w_lp": (
        "ibug_300w_lp/dummy_data/300W_LP/landmarks/AFW/AFW_134212_1_0_pts.mat",
        functools.partial(ibug_300w_lp.parse_lp_mat, variable="pts_2d"),
    ),
}


@functools.cache
def dummy(path):
    with open(os.path.join(HERE, path), "rb") as f:
        return f.read()


def mutations(data: bytes):
    """Byte flips, 4-byte overwrites (tags, sizes), truncations and insertions of `data`."""
    n = len(data)
    flip = st.tuples(st.just("flip"), st.integers(0, n - 1), st.integers(0, 255))
    word = st.tuples(st.just("word"), st.integers(0, n - 4), st.integers(0, 2**32 - 1))
    cut = st.tuples(st.just("cut"), st.integers(0, n - 1), st.just(0))
    insert = st.tuples(st.just("insert"), st.integers(0, n), st.integers(0, 255))
    return st.lists(st.one_of(flip, word, cut, insert), min_size=1, max_size=6)


def mutate(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for kind, pos, value in edits:
        pos = min(pos, len(b))
        if kind == "flip" and pos < len(b):
            b[pos] = value
        elif kind == "word" and pos + 4 <= len(b):
            b[pos : pos + 4] = struct.pack("<I", value)
        elif kind == "cut":
            del b[pos:]
        elif kind == "insert":
            b.insert(pos, value)
    return bytes(b)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_dummy_mat_files_read(reader):
    path, read = READERS[reader]
    read(dummy(path), path)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_mutated_mat_files_read_or_raise_a_data_error_naming_the_file(reader):
    path, read = READERS[reader]
    data = dummy(path)

    # derandomize: the same cases on every run; a scipy segfault would kill pytest itself.
    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(mutations(data))
    def check(edits):
        try:
            read(mutate(data, edits), "fuzzed.mat")
        except common.DataError as err:
            assert "fuzzed.mat" in str(err)

    check()


@pytest.mark.parametrize(
    "offset,word,message",
    [
        (1320, 236, r"bad data element \(type 236"),  # an unknown type tag
        (144, 0x9A06, "array of class 6 has 1 data parts"),  # complex flag, no imaginary part
    ],
)
def test_tags_that_crashed_scipy_are_refused(offset, word, message):
    # Both made scipy 1.17.1's loadmat segfault before the tags were checked.
    data = bytearray(dummy("ibug_300w_lp/dummy_data/300W_LP/HELEN/HELEN_100032540_1_0.mat"))
    data[offset : offset + 4] = struct.pack("<I", word)
    with pytest.raises(common.DataError, match=f"x.mat: {message}"):
        common.load_mat5(bytes(data), "x.mat")


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(max_size=400))
def test_random_bytes_are_not_a_mat_file(data):
    with pytest.raises(common.DataError, match="r.mat: "):
        common.load_mat5(data, "r.mat")


def test_text_where_numbers_belong_is_named():
    with pytest.raises(common.DataError, match=r"f.mat: 'Points': not a numeric array"):
        common.mat_numeric({"Points": np.array(["a", "b"])}, "Points", "f.mat")


# --- the rules for awkward annotations (common.py's docstring) ---

IMAGE = np.zeros((10, 20, 3), np.uint8)


def test_non_finite_points_become_invisible_at_the_origin():
    points = [[1.0, 2.0], [np.nan, 3.0], [4.0, np.inf], [5.0, 6.0]]
    example = common.make_example(IMAGE, points, "a", bbox=[0, 0, 10, 10])
    np.testing.assert_array_equal(example["visible"], [1, 0, 0, 1])
    np.testing.assert_array_equal(example["landmarks"], [[1, 2], [0, 0], [0, 0], [5, 6]])
    assert np.all(np.isfinite(example["landmarks"]))


def test_points_outside_the_image_are_kept_as_they_are_and_visible():
    points = [[-5.0, 2.0], [25.0, 3.0], [4.0, 40.0]]
    example = common.make_example(IMAGE, points, "b")
    np.testing.assert_array_equal(example["landmarks"], points)
    np.testing.assert_array_equal(example["visible"], [1, 1, 1])
    np.testing.assert_array_equal(example["bbox"], [-5, 2, 25, 40])  # tight box, unclipped


@pytest.mark.parametrize(
    "bbox",
    [[5, 5, 5, 9], [5, 5, 9, 5], [9, 5, 5, 9], [0, 0, np.nan, 4], [0, 0, np.inf, 4], [1, 2, 3]],
)
def test_degenerate_boxes_are_refused_naming_the_example(bbox):
    with pytest.raises(common.DataError, match=r"face_7: degenerate box"):
        common.make_example(IMAGE, [[1.0, 1.0]], "face_7", bbox=bbox)


def test_a_box_from_landmarks_needs_two_distinct_visible_points():
    with pytest.raises(common.DataError, match="no visible landmark"):
        common.make_example(IMAGE, [[np.nan, 1.0]], "c")
    with pytest.raises(common.DataError, match="c: degenerate box"):
        common.make_example(IMAGE, [[1.0, 1.0], [1.0, 1.0]], "c")


def test_skip_corrupt_skips_bad_examples_and_raises_otherwise():
    def build(i):
        if i == 1:
            raise common.DataError(f"item {i}: bad")
        return str(i), {}

    assert [k for k, _ in common.generate(range(3), build, True, "t")] == ["0", "2"]
    with pytest.raises(common.DataError, match="item 1: bad"):
        list(common.generate(range(3), build, False, "t"))
