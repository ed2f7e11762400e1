"""Readers for landmark annotation files, strict: every error names the file and the line.

`.pts` (the iBUG format) is 1-based; readers return 0-based points in the
pixel-centre convention, so they subtract 1.
"""

from __future__ import annotations

import math

import numpy as np
from etils import epath


class AnnotationError(ValueError):
    """A malformed annotation file; the message names the file and the line."""


def parse_pts(text: str, name: str = "<string>", num_landmarks: int | None = None) -> np.ndarray:
    """Parses the text of a `.pts` file into float32[K, 2], 0-based (x, y)."""
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines())]
    lines = [(i, ln) for i, ln in lines if ln]
    header = {}
    while lines and not lines[0][1].startswith("{"):
        lineno, line = lines.pop(0)
        key, sep, value = line.partition(":")
        if not sep:
            raise AnnotationError(
                f"{name}:{lineno}: expected 'key: value' header or '{{', got {line!r}"
            )
        header[key.strip()] = value.strip()
    if "n_points" not in header:
        raise AnnotationError(f"{name}: missing 'n_points:' header")
    try:
        count = int(header["n_points"])
    except ValueError:
        raise AnnotationError(
            f"{name}: n_points is not an integer: {header['n_points']!r}"
        ) from None
    if count <= 0:
        raise AnnotationError(f"{name}: n_points must be positive, got {count}")
    if not lines or lines[0][1] != "{":
        raise AnnotationError(f"{name}: missing '{{' before the points")
    lines.pop(0)
    if not lines or lines[-1][1] != "}":
        raise AnnotationError(f"{name}: missing closing '}}' after the points")
    end_line = lines.pop()[0]
    if len(lines) != count:
        raise AnnotationError(
            f"{name}: n_points is {count} but {len(lines)} point lines precede "
            f"the '}}' on line {end_line}"
        )
    points = np.empty((count, 2), np.float64)
    for k, (lineno, line) in enumerate(lines):
        fields = line.split()
        try:
            values = [float(f) for f in fields]
        except ValueError:
            values = []
        if len(values) != 2 or not all(math.isfinite(v) for v in values):
            raise AnnotationError(
                f"{name}:{lineno}: expected two finite numbers 'x y', got {line!r}"
            )
        points[k] = values
    if num_landmarks is not None and count != num_landmarks:
        raise AnnotationError(f"{name}: has {count} points, expected {num_landmarks}")
    return (points - 1.0).astype(np.float32)


def read_pts(path, num_landmarks: int | None = None) -> np.ndarray:
    """Reads a `.pts` file into float32[K, 2], 0-based (x, y)."""
    path = epath.Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise AnnotationError(f"{path}: not a text file") from None
    return parse_pts(text, str(path), num_landmarks)


def format_pts(points) -> str:
    """The `.pts` text of float[K, 2] 0-based points (written 1-based)."""
    points = np.asarray(points, np.float64) + 1.0
    body = "\n".join(f"{x:.6f} {y:.6f}" for x, y in points)
    return f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n"
