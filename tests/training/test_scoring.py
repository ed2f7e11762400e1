"""Tests for sphm_jax.training.scoring: subsets, gathering of kept examples (the whole path against training's
evaluation is in tests/test_evaluate.py)."""

import numpy as np

from sphm_jax.training import scoring


def test_score_splits_by_string_values_and_by_each_flag_column():
    nmes = np.array([0.01, 0.02, 0.30, 0.04])
    subsets = {
        "pose": np.array(["frontal", "profile", "profile", "frontal"]),  # as collect gives them
        "attributes": np.array([[1, 0], [0, 0], [1, 1], [0, 0]]),  # WFLW-like flag columns
        "occluded": np.array([0, 0, 0, 0]),  # a flag nobody has: no row
    }
    result = scoring.score(nmes, subsets, auc_threshold=0.1, failure_threshold=0.1)
    assert result["num_examples"] == 4 and result["nme"] == np.mean(nmes)
    assert result["pose=frontal"]["nme"] == np.mean(nmes[[0, 3]])
    assert result["pose=profile"]["failure_rate@0.1"] == 0.5
    assert result["attributes[0]"]["num_examples"] == 2
    assert result["attributes[1]"]["nme"] == 0.30
    assert "occluded" not in result


def test_collect_keeps_real_examples_and_flattens_nested_subsets():
    def predicted(offset):
        keep = np.array([True, True, False])  # the last row pads the final batch
        batch = {
            "visible": np.ones((3, 2)),
            "bbox": np.zeros((3, 4)) + offset,
            "attributes": {"blur": np.array([1, 0, 1]), "pose": np.array([0, 1, 1])},
        }
        outputs = {"points": np.full((3, 2, 2), offset, np.float32)}
        return scoring.Predicted(batch, outputs, keep, np.zeros((2, 2, 2)) + offset)

    collected = scoring.collect([predicted(0.0), predicted(1.0)], ("attributes",))
    assert collected["outputs"]["points"].shape == (4, 2, 2)
    np.testing.assert_array_equal(collected["bbox"][:, 0], [0, 0, 1, 1])
    assert set(collected["subsets"]) == {"attributes/blur", "attributes/pose"}
    np.testing.assert_array_equal(collected["subsets"]["attributes/blur"], [1, 0, 1, 0])
