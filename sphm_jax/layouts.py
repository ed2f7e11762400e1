"""Landmark layouts of the paper's datasets: flip permutations, eye corners, groups.

All indices are 0-based. "Left"/"right" mean image-left/image-right of an
upright frontal face (so the 68-point "left" eye is the subject's right eye).
Everything here is plain Python/numpy data, hashable, usable as static
arguments under ``jax.jit``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

Pairs = Iterable[tuple[int, int]]
Groups = tuple[tuple[str, tuple[int, ...]], ...]


@dataclasses.dataclass(frozen=True)
class Layout:
    """A landmark layout.

    flip_permutation: after mirroring an image, ``mirrored[..., perm, :]``
      restores semantic order; an involution of range(num_landmarks).
    eye_indices: (left outer eye corner, right outer eye corner), used for
      inter-ocular normalisation.
    groups: ((name, indices), ...), a partition of the points, for plots.
    """

    name: str
    num_landmarks: int
    flip_permutation: tuple[int, ...]
    eye_indices: tuple[int, int]
    groups: Groups

    def __post_init__(self):
        _validate(self)

    def group(self, name: str) -> tuple[int, ...]:
        """Indices of the group called `name`."""
        for group_name, indices in self.groups:
            if group_name == name:
                return indices
        raise ValueError(
            f"layout {self.name!r} has no group {name!r}; groups: {[g for g, _ in self.groups]}"
        )


def _validate(layout: Layout) -> None:
    """Raise ValueError unless `layout` is self-consistent."""
    k, perm, name = layout.num_landmarks, layout.flip_permutation, layout.name
    if len(perm) != k:
        raise ValueError(f"{name}: flip_permutation has {len(perm)} entries, expected {k}")
    if sorted(perm) != list(range(k)):
        raise ValueError(f"{name}: flip_permutation is not a permutation of range({k})")
    bad = [i for i in range(k) if perm[perm[i]] != i]
    if bad:
        raise ValueError(f"{name}: flip_permutation is not an involution at indices {bad}")
    left, right = layout.eye_indices
    if not (0 <= left < k and 0 <= right < k and left != right):
        raise ValueError(
            f"{name}: eye_indices {layout.eye_indices} must be two distinct indices in range({k})"
        )
    # Mirroring swaps the two outer eye corners; anything else is a typo.
    if perm[left] != right:
        raise ValueError(f"{name}: eye_indices {layout.eye_indices} are not flip partners")
    seen = [i for _, indices in layout.groups for i in indices]
    if sorted(seen) != list(range(k)):
        raise ValueError(f"{name}: groups must partition range({k})")


def _involution(k: int, pairs: Pairs) -> tuple[int, ...]:
    """The permutation of range(k) swapping each pair, fixing the rest."""
    perm = list(range(k))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


def _span(start: int, stop: int) -> tuple[int, ...]:
    return tuple(range(start, stop))


# iBUG 68 (300W, Menpo-68, COFW-68, 300VW). Sources: mmpose
# configs/_base_/datasets/300w.py (swap), HRNet lib/utils/transforms.py
# MATCHED_PARTS["300W"] (1-based), PIPNet lib/train.py points_flip (1-based).
IBUG68 = Layout(
    name="ibug68",
    num_landmarks=68,
    flip_permutation=_involution(
        68,
        [
            *[(i, 16 - i) for i in range(8)],  # jaw, 8 is the chin
            *[(17 + i, 26 - i) for i in range(5)],  # brows
            (31, 35),
            (32, 34),  # nostrils; 27-30, 33 central
            (36, 45),
            (37, 44),
            (38, 43),
            (39, 42),
            (40, 47),
            (41, 46),  # eyes
            (48, 54),
            (49, 53),
            (50, 52),
            (55, 59),
            (56, 58),  # outer lips
            (60, 64),
            (61, 63),
            (65, 67),  # inner lips
        ],
    ),
    eye_indices=(36, 45),
    groups=(
        ("jaw", _span(0, 17)),
        ("brows", _span(17, 27)),
        ("nose", _span(27, 36)),
        ("eyes", _span(36, 48)),
        ("mouth", _span(48, 68)),
    ),
)

# WFLW 98. Sources: mmpose configs/_base_/datasets/wflw.py (swap), HRNet
# MATCHED_PARTS["WFLW"] (0-based there), PIPNet lib/train.py points_flip.
WFLW98 = Layout(
    name="wflw98",
    num_landmarks=98,
    flip_permutation=_involution(
        98,
        [
            *[(i, 32 - i) for i in range(16)],  # contour, 16 is the chin
            (33, 46),
            (34, 45),
            (35, 44),
            (36, 43),
            (37, 42),  # upper brows
            (38, 50),
            (39, 49),
            (40, 48),
            (41, 47),  # lower brows
            (55, 59),
            (56, 58),  # nostrils; 51-54, 57 central
            (60, 72),
            (61, 71),
            (62, 70),
            (63, 69),
            (64, 68),  # eyes
            (65, 75),
            (66, 74),
            (67, 73),
            (76, 82),
            (77, 81),
            (78, 80),
            (83, 87),
            (84, 86),  # outer lips
            (88, 92),
            (89, 91),
            (93, 95),  # inner lips
            (96, 97),  # pupils
        ],
    ),
    eye_indices=(60, 72),
    groups=(
        ("jaw", _span(0, 33)),
        ("brows", _span(33, 51)),
        ("nose", _span(51, 60)),
        ("eyes", _span(60, 76) + (96, 97)),
        ("mouth", _span(76, 96)),
    ),
)

# COFW 29. Sources: mmpose configs/_base_/datasets/cofw.py (swap), HRNet
# MATCHED_PARTS["COFW"] (1-based), PIPNet lib/train.py points_flip (1-based);
# semantics checked against PIPNet data/COFW/meanface.txt geometry.
COFW29 = Layout(
    name="cofw29",
    num_landmarks=29,
    flip_permutation=_involution(
        29,
        [
            (0, 1),
            (2, 3),
            (4, 6),
            (5, 7),  # brows: outer, inner, top, bottom
            (8, 9),
            (10, 11),
            (12, 14),
            (13, 15),
            (16, 17),  # eyes: outer, inner, top, bottom, pupil
            (18, 19),  # nose wings; 20 tip, 21 base central
            (22, 23),  # mouth corners; 24-27 lip midpoints, 28 chin
        ],
    ),
    eye_indices=(8, 9),
    groups=(
        ("brows", _span(0, 8)),
        ("eyes", _span(8, 18)),
        ("nose", _span(18, 22)),
        ("mouth", _span(22, 28)),
        ("jaw", (28,)),
    ),
)

# AFLW 19. Sources: mmpose configs/_base_/datasets/aflw.py (swap), HRNet
# MATCHED_PARTS["AFLW"] (1-based), PIPNet lib/train.py points_flip (1-based);
# semantics checked against PIPNet data/AFLW/meanface.txt geometry.
AFLW19 = Layout(
    name="aflw19",
    num_landmarks=19,
    flip_permutation=_involution(
        19,
        [
            (0, 5),
            (1, 4),
            (2, 3),  # brows, left to right across the image
            (6, 11),
            (7, 10),
            (8, 9),  # eyes: outer, centre, inner per eye
            (12, 14),  # nose wings; 13 nose centre
            (15, 17),  # mouth corners; 16 mouth centre, 18 chin
        ],
    ),
    eye_indices=(6, 11),
    groups=(
        ("brows", _span(0, 6)),
        ("eyes", _span(6, 12)),
        ("nose", _span(12, 15)),
        ("mouth", _span(15, 18)),
        ("jaw", (18,)),
    ),
)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (IBUG68, WFLW98, COFW29, AFLW19)}

# Dataset names that share a layout, so configs can name the dataset.
_ALIASES = {
    "300w": "ibug68",
    "300vw": "ibug68",
    "menpo68": "ibug68",
    "cofw68": "ibug68",
    "wflw": "wflw98",
    "cofw": "cofw29",
    "aflw": "aflw19",
}
_BY_COUNT = {layout.num_landmarks: layout for layout in LAYOUTS.values()}


def get_layout(name_or_num_landmarks: str | int) -> Layout:
    """The layout for a name ("ibug68", "wflw", ...) or a landmark count."""
    key = name_or_num_landmarks
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if int(key) in _BY_COUNT:
            return _BY_COUNT[int(key)]
    elif isinstance(key, str):
        name = _ALIASES.get(key.lower(), key.lower())
        if name in LAYOUTS:
            return LAYOUTS[name]
    raise ValueError(
        f"unknown landmark layout {key!r}; known names: "
        f"{sorted(LAYOUTS) + sorted(_ALIASES)}, known landmark counts: "
        f"{sorted(_BY_COUNT)}"
    )
