"""Prediction outputs: one record per face (or error) to .json, .jsonl or .csv, in input order,
and the overlays of each image."""

from __future__ import annotations

import contextlib
import csv
import heapq
import json
import math
import os
import sys

import numpy as np

from sphm_jax.data import image_io
from sphm_jax.data.boxes import BOX_FIELDS, InputError
from sphm_jax.toolkit import plots, video
from sphm_jax.toolkit.predictor import RELIABLE_SCORE
from sphm_jax.training import paths


class Records:
    """One record per face (or error) to .json (an array), .jsonl or .csv, written as it comes."""

    def __init__(self, path: str | None, num_landmarks: int):
        self.path, self.k = path, num_landmarks
        self.kind = "jsonl" if path is None else paths.path(path).suffix.lower().lstrip(".")
        if self.kind not in ("json", "jsonl", "csv"):
            raise InputError(f"--output {path}: write .json, .jsonl or .csv")
        self.opened = contextlib.ExitStack()  # a remote file is a context manager only
        self.file = (
            sys.stdout if path is None else self.opened.enter_context(paths.path(path).open("w"))
        )
        self.count = 0
        if self.kind == "json":
            self.file.write("[\n")
        if self.kind == "csv":
            self.csv = csv.writer(self.file)
            coords = [f"{a}_{i}" for i in range(self.k) for a in "xy"]
            scores = [f"score_{i}" for i in range(self.k)]
            header = ["image", "frame", "face", *BOX_FIELDS, "error", "unreliable"]
            self.csv.writerow(header + coords + scores)

    def write(self, record: dict) -> None:
        if self.kind == "csv":
            box = record["box"] or [""] * 4
            points = np.ravel(record.get("landmarks") or []).tolist()
            scores = record.get("scores") or []
            unreliable = " ".join(map(str, record["unreliable"] or []))
            row = [record["image"], record.get("frame", ""), record["face"], *box]
            self.csv.writerow(row + [record["error"] or "", unreliable] + points + scores)
        else:
            line = json.dumps(record)
            sep = ",\n" if self.kind == "json" and self.count else ""
            self.file.write(sep + line + ("" if self.kind == "json" else "\n"))
        self.count += 1

    def close(self) -> None:
        if self.kind == "json":
            self.file.write("\n]\n")
        self.opened.close()


def face_record(
    name: str, face, box, points=None, scores=None, error=None, *, frame=None, min_score=None
) -> dict:
    """One output record; `unreliable` lists the points whose peak score is below min_score."""
    as_list = lambda a: None if a is None else np.round(np.asarray(a, np.float64), 4).tolist()
    threshold = RELIABLE_SCORE if min_score is None else min_score
    unreliable = None if scores is None else np.flatnonzero(np.asarray(scores) < threshold)
    return {
        "image": name,
        **({} if frame is None else {"frame": frame}),
        "face": face,
        "box": as_list(box),
        "landmarks": as_list(points),
        "scores": as_list(scores),
        "unreliable": None if unreliable is None else unreliable.tolist(),
        "error": error,
    }


class Writer:
    """Records in input order (an error waits in a heap for the faces before it), and overlays."""

    def __init__(self, records: Records, overlays: str | None, min_score: float):
        self.records, self.overlays, self.min_score = records, overlays, min_score
        self.errors = []  # heap of (image index, face index, record)
        self.failed = []  # image names
        self.faceless = 0  # images where the detector found no face
        self.overlay = []  # the faces of the image being drawn

    def error(self, i, f, img, box, message, failed=True) -> None:
        if failed:
            self.failed.append(img.name)
        else:
            self.faceless += 1
        record = face_record(img.name, f, box, error=message)
        heapq.heappush(self.errors, (i, -1 if f is None else f, record))

    def flush_errors(self, before) -> None:
        while self.errors and self.errors[0][:2] < before:
            self.records.write(heapq.heappop(self.errors)[2])

    def face(self, i, f, img, box, points, scores) -> None:
        self.flush_errors((i, f))
        self.records.write(face_record(img.name, f, box, points, scores, min_score=self.min_score))
        self.overlay.append((img, box, points, scores))

    def draw(self) -> None:
        """The overlay of the image whose faces are done."""
        pending, self.overlay = self.overlay, []
        if self.overlays and pending:
            img = pending[0][0]
            out = paths.path(self.overlays) / (os.path.splitext(img.name)[0] + ".png")
            out.parent.mkdir(parents=True, exist_ok=True)
            boxes, points, scores = (np.stack([p[k] for p in pending]) for k in (1, 2, 3))
            image = image_io.read_image(img.path)
            drawn = plots.draw_landmarks(image, boxes, points, flagged=scores < self.min_score)
            plots.save_png(drawn, out)

    def close(self) -> None:
        self.flush_errors((math.inf, math.inf))
        self.records.close()


def clip_overlay(overlays: str | None, clip: str, fps: float):
    """Where a clip's overlay frames go: an .mp4 (a video writer) or a folder of PNGs."""
    if not overlays:
        return None
    if overlays.lower().endswith(video.VIDEO_SUFFIXES):
        return video.VideoWriter(overlays, fps)
    return paths.path(overlays) / os.path.splitext(os.path.basename(os.path.normpath(clip)))[0]


def draw_frame(overlay, t: int, frame, faces, min_score: float) -> None:
    """Draws a frame's faces (unreliable points as rings) into an overlay video or folder."""
    drawn = frame
    if faces:
        boxes, points = np.stack([f.box for f in faces]), np.stack([f.points for f in faces])
        flagged = np.stack([f.scores < min_score for f in faces])
        drawn = plots.draw_landmarks(frame, boxes, points, flagged=flagged)
    if isinstance(overlay, video.VideoWriter):
        overlay.write(drawn)
    else:
        overlay.mkdir(parents=True, exist_ok=True)
        plots.save_png(drawn, overlay / f"{t:06d}.png")
