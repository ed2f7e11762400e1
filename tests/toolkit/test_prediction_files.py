"""Tests for sphm_jax.toolkit.prediction_files: the records' fields (unreliable points, frames) in every format."""

import csv
import json

import numpy as np

from sphm_jax.toolkit import prediction_files


def test_records_flag_low_scores_and_carry_frames_in_every_format(tmp_path):
    points = np.arange(6, dtype=np.float32).reshape(3, 2)
    scores = np.float32([0.9, 0.1, 0.3])
    photo = prediction_files.face_record("a.png", 0, [0, 0, 9, 9], points, scores, min_score=0.3)
    assert photo["unreliable"] == [1] and "frame" not in photo
    frame = prediction_files.face_record(
        "c.mp4", 2, [0, 0, 9, 9], points, scores, frame=7, min_score=0.5
    )
    assert frame["unreliable"] == [1, 2] and frame["frame"] == 7
    error = prediction_files.face_record("b.png", None, None, error="no face detected")
    assert error["unreliable"] is None and error["landmarks"] is None
    for kind in ("json", "jsonl", "csv"):
        records = prediction_files.Records(str(tmp_path / f"out.{kind}"), 3)
        for record in (photo, frame, error):
            records.write(record)
        records.close()
    assert json.loads((tmp_path / "out.json").read_text()) == [photo, frame, error]
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [photo, frame, error]
    with open(tmp_path / "out.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["frame"] for r in rows] == ["", "7", ""]
    assert [r["unreliable"] for r in rows] == ["1", "1 2", ""]
    assert float(rows[1]["x_2"]) == 4 and rows[2]["error"] == "no face detected"
