"""Tests for sphm_jax.layouts."""

import numpy as np
import pytest

from sphm_jax import layouts
from sphm_jax.layouts import LAYOUTS, Layout, get_layout
from tests.helpers import mirror_points

ALL = sorted(LAYOUTS)


# --- Hand-drawn sketches of each layout (unit square, image-left = small x),
# written from the annotation schemes, independent of the flip tables. ---


def _row(xs, y):
    return [(x, y) for x in xs]


def _ibug68_sketch():
    theta = np.linspace(0.0, np.pi, 17)
    jaw = list(zip(0.5 - 0.45 * np.cos(theta), 0.3 + 0.6 * np.sin(theta)))
    brows = _row(np.linspace(0.15, 0.42, 5), 0.15) + _row(np.linspace(0.58, 0.85, 5), 0.15)
    nose = [(0.5, y) for y in np.linspace(0.25, 0.5, 4)] + _row(np.linspace(0.4, 0.6, 5), 0.55)

    def eye(outer_x, inner_x):  # corner, two upper, corner, two lower, clockwise
        a, b = min(outer_x, inner_x), max(outer_x, inner_x)
        t1, t2 = a + (b - a) / 3, a + 2 * (b - a) / 3
        return [(a, 0.3), (t1, 0.27), (t2, 0.27), (b, 0.3), (t2, 0.33), (t1, 0.33)]

    eyes = eye(0.2, 0.37) + eye(0.63, 0.8)
    outer = (
        [(0.35, 0.7)]
        + _row(np.linspace(0.4, 0.6, 5), 0.66)
        + [(0.65, 0.7)]
        + _row(np.linspace(0.6, 0.4, 5), 0.76)
    )
    inner = (
        [(0.38, 0.7)]
        + _row([0.44, 0.5, 0.56], 0.69)
        + [(0.62, 0.7)]
        + _row([0.56, 0.5, 0.44], 0.72)
    )
    return np.array(jaw + brows + nose + eyes + outer + inner)


def _wflw98_sketch():
    theta = np.linspace(0.0, np.pi, 33)
    contour = list(zip(0.5 - 0.42 * np.cos(theta), 0.4 + 0.5 * np.sin(theta)))

    def brow(x0, x1):  # upper edge left to right, lower edge right to left
        up = _row(np.linspace(x0, x1, 5), 0.31)
        low = _row(np.linspace(x1, x0, 6)[1:5], 0.34)
        return up + low

    nose = [(0.5, y) for y in np.linspace(0.4, 0.57, 4)] + _row(np.linspace(0.41, 0.59, 5), 0.6)

    def eye(x0, x1):  # left corner, three upper, right corner, three lower
        xs = np.linspace(x0, x1, 5)
        return [(x0, 0.41)] + _row(xs[1:4], 0.385) + [(x1, 0.41)] + _row(xs[3:0:-1], 0.42)

    outer = (
        [(0.34, 0.7)]
        + _row(np.linspace(0.4, 0.6, 5), 0.67)
        + [(0.66, 0.7)]
        + _row(np.linspace(0.6, 0.4, 5), 0.75)
    )
    inner = (
        [(0.42, 0.69)]
        + _row([0.46, 0.5, 0.54], 0.685)
        + [(0.58, 0.69)]
        + _row([0.54, 0.5, 0.46], 0.72)
    )
    pupils = [(0.32, 0.40), (0.68, 0.40)]
    return np.array(
        contour
        + brow(0.18, 0.42)
        + brow(0.58, 0.82)
        + nose
        + eye(0.24, 0.40)
        + eye(0.60, 0.76)
        + outer
        + inner
        + pupils
    )


def _cofw29_sketch():
    return np.array(
        [
            (0.09, 0.15),
            (0.91, 0.15),
            (0.40, 0.15),
            (0.60, 0.15),  # brow outer, inner
            (0.24, 0.10),
            (0.24, 0.14),
            (0.76, 0.10),
            (0.76, 0.14),  # brow top, bottom
            (0.17, 0.24),
            (0.83, 0.24),
            (0.38, 0.24),
            (0.62, 0.24),  # eye outer, inner
            (0.28, 0.20),
            (0.28, 0.27),
            (0.72, 0.20),
            (0.72, 0.27),  # eye top, bottom
            (0.28, 0.23),
            (0.72, 0.23),  # pupils
            (0.38, 0.49),
            (0.62, 0.49),
            (0.50, 0.47),
            (0.50, 0.54),  # nose wings, tip, base
            (0.32, 0.66),
            (0.68, 0.66),  # mouth corners
            (0.50, 0.63),
            (0.50, 0.66),
            (0.50, 0.70),
            (0.50, 0.75),  # lip midpoints
            (0.50, 0.95),  # chin
        ]
    )


def _aflw19_sketch():
    return np.array(
        _row([0.25, 0.34, 0.43, 0.57, 0.66, 0.75], 0.22)  # brows
        + _row([0.29, 0.36, 0.42, 0.58, 0.64, 0.71], 0.31)  # eyes
        + _row([0.40, 0.50, 0.60], 0.53)  # nose
        + _row([0.38, 0.50, 0.62], 0.69)  # mouth
        + [(0.50, 0.93)]
    )  # chin


SKETCHES = {
    "ibug68": _ibug68_sketch,
    "wflw98": _wflw98_sketch,
    "cofw29": _cofw29_sketch,
    "aflw19": _aflw19_sketch,
}

# Named facts from the sources (mmpose swap lists, HRNet MATCHED_PARTS, PIPNet).
KNOWN_PAIRS = {
    "ibug68": [
        (0, 16),
        (8, 8),
        (17, 26),
        (21, 22),
        (27, 27),
        (30, 30),
        (31, 35),
        (33, 33),
        (36, 45),
        (39, 42),
        (48, 54),
        (51, 51),
        (57, 57),
        (60, 64),
        (62, 62),
        (66, 66),
    ],
    "wflw98": [
        (0, 32),
        (16, 16),
        (33, 46),
        (38, 50),
        (51, 51),
        (54, 54),
        (55, 59),
        (57, 57),
        (60, 72),
        (64, 68),
        (76, 82),
        (79, 79),
        (85, 85),
        (88, 92),
        (96, 97),
    ],
    "cofw29": [
        (0, 1),
        (2, 3),
        (4, 6),
        (5, 7),
        (8, 9),
        (10, 11),
        (12, 14),
        (13, 15),
        (16, 17),
        (18, 19),
        (20, 20),
        (21, 21),
        (22, 23),
        (24, 24),
        (27, 27),
        (28, 28),
    ],
    "aflw19": [
        (0, 5),
        (1, 4),
        (2, 3),
        (6, 11),
        (7, 10),
        (8, 9),
        (12, 14),
        (13, 13),
        (15, 17),
        (16, 16),
        (18, 18),
    ],
}


@pytest.mark.parametrize("name", ALL)
def test_permutation_is_involution(name):
    layout = LAYOUTS[name]
    perm = np.array(layout.flip_permutation)
    assert layout.name == name
    assert len(perm) == layout.num_landmarks == int(name[-2:])
    assert sorted(perm.tolist()) == list(range(layout.num_landmarks))
    np.testing.assert_array_equal(perm[perm], np.arange(layout.num_landmarks))


def test_eye_indices_match_design_doc():
    assert LAYOUTS["ibug68"].eye_indices == (36, 45)
    assert LAYOUTS["wflw98"].eye_indices == (60, 72)
    assert LAYOUTS["cofw29"].eye_indices == (8, 9)
    assert LAYOUTS["aflw19"].eye_indices == (6, 11)


@pytest.mark.parametrize("name", ALL)
def test_known_pairs(name):
    perm = LAYOUTS[name].flip_permutation
    for a, b in KNOWN_PAIRS[name]:
        assert perm[a] == b and perm[b] == a, (a, b)


@pytest.mark.parametrize("name", ALL)
def test_mirrored_sketch_matches_permutation(name):
    # Mirror the sketch; each point must land nearest its flip partner.
    layout = LAYOUTS[name]
    sketch = SKETCHES[name]()
    assert sketch.shape == (layout.num_landmarks, 2)
    mirrored = sketch * [-1.0, 1.0] + [1.0, 0.0]
    dist = np.linalg.norm(mirrored[:, None] - sketch[None], axis=-1)
    np.testing.assert_array_equal(dist.argmin(axis=1), layout.flip_permutation)
    # Outer eye corners: image-leftmost / rightmost points of the eyes group.
    eyes = np.array(layout.group("eyes"))
    left, right = layout.eye_indices
    assert left == eyes[sketch[eyes, 0].argmin()]
    assert right == eyes[sketch[eyes, 0].argmax()]


@pytest.mark.parametrize("name", ALL)
def test_flip_permutation_maps_a_symmetric_face_onto_itself(name):
    # A face symmetric about the image centre is unchanged by a flip.
    layout = LAYOUTS[name]
    width = 256
    face = SKETCHES[name]() * (width - 1)
    face = (face + face[list(layout.flip_permutation)] * [-1, 1] + [width - 1, 0]) / 2
    flipped = mirror_points(face.astype(np.float32), width, layout.flip_permutation)
    np.testing.assert_allclose(flipped, face, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_groups_partition_and_are_flip_closed(name):
    layout = LAYOUTS[name]
    perm = layout.flip_permutation
    all_indices = sorted(i for _, idx in layout.groups for i in idx)
    assert all_indices == list(range(layout.num_landmarks))
    for _, idx in layout.groups:
        assert {perm[i] for i in idx} == set(idx)
    assert {g for g, _ in layout.groups} == {"jaw", "brows", "nose", "eyes", "mouth"}


def test_flip_permutation_swaps_the_outer_eye_corners():
    layout = LAYOUTS["aflw19"]
    points = np.zeros((19, 2), np.float32)
    points[6] = (0.0, 5.0)  # left outer eye corner in the first pixel column
    points[11] = (9.0, 7.0)  # right outer eye corner in the last column
    flipped = mirror_points(points, 10, layout.flip_permutation)
    assert flipped.dtype == np.float32
    np.testing.assert_array_equal(flipped[11], (9.0, 5.0))
    np.testing.assert_array_equal(flipped[6], (0.0, 7.0))


@pytest.mark.parametrize(
    "key, name",
    [
        (68, "ibug68"),
        (98, "wflw98"),
        (29, "cofw29"),
        (19, "aflw19"),
        (np.int64(68), "ibug68"),
        ("ibug68", "ibug68"),
        ("WFLW98", "wflw98"),
        ("300w", "ibug68"),
        ("cofw", "cofw29"),
        ("aflw", "aflw19"),
    ],
)
def test_get_layout(key, name):
    assert get_layout(key) is LAYOUTS[name]


@pytest.mark.parametrize("key", [5, "helen194", True, None, 68.0])
def test_get_layout_unknown(key):
    with pytest.raises(ValueError) as info:
        get_layout(key)
    message = str(info.value)
    assert repr(key) in message
    assert "ibug68" in message and "98" in message


def test_layout_validation():
    good = dict(
        name="toy",
        num_landmarks=3,
        flip_permutation=(2, 1, 0),
        eye_indices=(0, 2),
        groups=(("eyes", (0, 1, 2)),),
    )
    assert hash(Layout(**good)) == hash(Layout(**good))
    bad = {
        "entries": dict(flip_permutation=(2, 1)),
        "not a permutation": dict(flip_permutation=(0, 0, 1)),
        "involution": dict(flip_permutation=(1, 2, 0)),
        "distinct indices": dict(eye_indices=(0, 3)),
        "flip partners": dict(eye_indices=(0, 1)),
        "partition": dict(groups=(("eyes", (0, 1)),)),
    }
    for message, change in bad.items():
        with pytest.raises(ValueError, match=message):
            Layout(**{**good, **change})


def test_group_lookup():
    assert LAYOUTS["ibug68"].group("jaw") == tuple(range(17))
    with pytest.raises(ValueError, match="no group"):
        LAYOUTS["ibug68"].group("ears")


def test_module_constants_are_the_registry():
    assert layouts.IBUG68 is LAYOUTS["ibug68"]
    assert set(LAYOUTS) == {"ibug68", "wflw98", "cofw29", "aflw19"}
