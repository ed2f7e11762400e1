"""Tests for sphm_jax.stability: the views, the confidence statistics on a predictor whose error
follows its score, and the whole command on a trained tiny workdir."""

import json

import numpy as np
import pytest

from sphm_jax import geometry, stability


def test_views_shift_scale_and_rotate_about_the_face_centre():
    centre = np.float32([100.0, 80.0])
    by_kind = {}
    for view in stability.VIEWS:
        m = stability.view_matrix(view, centre, heatmap_px=4.0)
        moved = np.asarray(geometry.transform_points(centre[None], m))[0]
        by_kind.setdefault(view[0], []).append(moved - centre)
        if view[0] in ("scale", "rotation", "identity"):
            np.testing.assert_allclose(moved, centre, atol=1e-4)  # the centre stays
    shifts = np.array(by_kind["shift"])  # 1/4, 1/2, 3/4 heatmap px = 1, 2, 3 px here
    np.testing.assert_allclose(np.abs(shifts).sum(-1), [1, 2, 3, 1, 2, 3], atol=1e-4)
    corner = np.float32([[110.0, 80.0]])
    for view in stability.VIEWS:
        moved = np.asarray(
            geometry.transform_points(corner, stability.view_matrix(view, centre, 4))
        )
        if view[0] == "scale":
            np.testing.assert_allclose(moved[0, 0] - 100, 10 * view[3], rtol=1e-5)
        if view[0] == "rotation":
            np.testing.assert_allclose(np.linalg.norm(moved - centre), 10, rtol=1e-5)


def test_runs_of_found_frames():
    found = [True, True, False, True, False, True, True, True]
    assert stability._runs(found) == [slice(0, 2), slice(5, 8)]
    assert stability._runs([False, True, False]) == []


class ScoredModel:
    """Returns each face's truth moved by (1 - score) * 10 px, scores spread over [0, 1]."""

    def __init__(self, examples):
        self.truth = {id(e["image"]): e["landmarks"] for e in examples}
        self.rng = np.random.default_rng(0)

    def __call__(self, image, boxes):
        gt = self.truth[id(image)]
        scores = self.rng.uniform(0, 1, len(gt)).astype(np.float32)
        direction = self.rng.normal(size=gt.shape)
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        return (gt + direction * (1 - scores)[:, None] * 10)[None], scores[None]


def test_confidence_finds_that_low_scores_mean_large_errors():
    rng = np.random.default_rng(1)
    examples = []
    for _ in range(6):
        gt = rng.uniform(20, 100, (68, 2)).astype(np.float32)
        gt[[36, 45]] = [[40, 50], [80, 50]]  # inter-ocular distance 40
        examples.append({"image": np.zeros((4, 4, 3), np.uint8), "bbox": None, "landmarks": gt})
    result = stability.confidence(ScoredModel(examples), examples)
    assert result["spearman"] < -0.95 and result["points"] == 6 * 68
    errors = result["error_by_score_quintile"]
    assert errors == sorted(errors, reverse=True)  # the lowest scores err the most
    assert result["flagged_error"] > result["unflagged_error"]


@pytest.mark.xdist_group("uninterrupted")
def test_the_command_on_a_trained_workdir(uninterrupted, tmp_path):
    pytest.importorskip("dlib")
    out = tmp_path / "out"
    args = ["--checkpoint", str(uninterrupted), "--label", "tiny", "--faces", "3"]
    args += ["--clips", "1", "--frames", "3", "--detector", "dlib", "--output_dir", str(out)]
    assert stability.main(args) == 0
    saved = json.loads((out / "stability.json").read_text())
    result = saved["results"]["tiny"]
    assert set(result["consistency"]) == {"all", "shift", "scale", "rotation"}
    assert all(np.isfinite(v) and v >= 0 for v in result["consistency"].values())
    assert np.isfinite(result["jitter"]["true boxes"]["nmj"])
    assert -1 <= result["confidence"]["spearman"] <= 1
    assert "| tiny |" in (out / "table.md").read_text()
