"""Tests for sphm_jax.data.landmark_io: the .pts reader and writer."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sphm_jax.data import landmark_io

PTS = """version: 1
n_points:  3
{
1.5 2.0
10 20.25

3e1 4
}
"""


def test_parse_pts_is_zero_based():
    np.testing.assert_allclose(landmark_io.parse_pts(PTS), [[0.5, 1.0], [9.0, 19.25], [29.0, 3.0]])


def test_read_and_format_roundtrip(tmp_path):
    points = np.random.default_rng(0).uniform(0, 500, (68, 2)).astype(np.float32)
    path = tmp_path / "face.pts"
    path.write_text(landmark_io.format_pts(points))
    np.testing.assert_allclose(landmark_io.read_pts(path, num_landmarks=68), points, atol=1e-4)


@pytest.mark.parametrize(
    "text,message",
    [
        (PTS.replace("n_points:  3", "n_points: 4"), "n_points is 4 but 3 point lines"),
        (PTS.replace("10 20.25", "10 abc"), r"x.pts:5: expected two finite numbers"),
        (PTS.replace("10 20.25", "10 nan"), r"x.pts:5: expected two finite numbers"),
        (PTS.replace("10 20.25", "10 20 30"), r"x.pts:5: expected two finite numbers"),
        (PTS.replace("n_points:  3\n", ""), "missing 'n_points:'"),
        (PTS.replace("n_points:  3", "n_points: three"), "not an integer"),
        (PTS.replace("}", ""), "missing closing"),
        (PTS.replace("{", ""), r"x.pts:4: expected 'key: value'"),
        ("", "missing 'n_points:'"),
    ],
)
def test_malformed_pts_names_the_file_and_line(text, message):
    with pytest.raises(landmark_io.AnnotationError, match=message):
        landmark_io.parse_pts(text, "x.pts")


def test_wrong_point_count_and_binary_files_are_reported(tmp_path):
    with pytest.raises(landmark_io.AnnotationError, match="has 3 points, expected 68"):
        landmark_io.parse_pts(PTS, "x.pts", num_landmarks=68)
    binary = tmp_path / "b.pts"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(landmark_io.AnnotationError, match="b.pts: not a text file"):
        landmark_io.read_pts(binary)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_raises_annotation_error(text):
    try:
        points = landmark_io.parse_pts(text, "fuzz.pts")
    except landmark_io.AnnotationError as err:
        assert "fuzz.pts" in str(err)
    else:
        assert points.ndim == 2 and points.shape[1] == 2 and np.all(np.isfinite(points))


# Characters that matter to the format, for edits of a valid file.
PTS_CHARS = st.sampled_from(list("{}:\n -.e+0123456789") + ["nan", "inf", "\x00", "\ufeff", "\r"])
PTS_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["replace", "delete", "insert"]), st.integers(0, len(PTS)), PTS_CHARS
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(PTS_EDITS)
def test_edited_pts_files_parse_exactly_or_raise_naming_the_file(edits):
    text = list(PTS)
    for kind, i, chars in edits:
        i = min(i, len(text) - 1)
        if kind == "replace":
            text[i] = chars
        elif kind == "delete":
            del text[i]
        else:
            text.insert(i, chars)
    try:
        points = landmark_io.parse_pts("".join(text), "edited.pts")
    except landmark_io.AnnotationError as err:
        assert str(err).startswith("edited.pts")
    else:
        assert points.dtype == np.float32 and points.shape[1] == 2 and np.all(np.isfinite(points))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(max_size=300))
def test_any_bytes_read_or_raise_naming_the_file(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("pts") / "raw.pts"
    path.write_bytes(data)
    try:
        landmark_io.read_pts(path)
    except landmark_io.AnnotationError as err:
        assert str(err).startswith(str(path))
