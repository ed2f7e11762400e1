"""Tests for sphm_jax.data.protocols: the paper's evaluation settings per dataset, read by configs/ and
sphm_jax.evaluate."""

import importlib

import numpy as np
import pytest

from sphm_jax import evaluate, geometry, metrics
from sphm_jax.data import protocols, synthetic_faces


def test_a_tfds_name_finds_its_builders_protocol():
    # A builder alone means its default config.
    assert protocols.get("ibug_300w") is protocols.get("ibug_300w/split1")
    assert protocols.get("cofw") is protocols.get("cofw/cofw29")
    # A config without a protocol of its own is scored as its builder; one with its own keeps it.
    assert protocols.get("ibug_300vw/stride5") is protocols.get("ibug_300vw")
    assert protocols.get("synthetic_faces/tiny") is protocols.get("synthetic_faces")
    assert protocols.get("cofw/cofw68") is not protocols.get("cofw/cofw29")
    assert protocols.get("pts_folder/landmarks68") is protocols.DEFAULT


# Per-face NMEs on both sides of every AUC cut-off (0.07, 0.08, 0.10) and the failure threshold.
ERRORS = np.array([0.01, 0.03, 0.06, 0.075, 0.09, 0.15])


@pytest.mark.parametrize("dataset", ["wflw", "ibug_300w/split2", "menpo", "aflw", "ibug_300vw"])
def test_evaluate_scores_with_the_datasets_norms_and_thresholds(dataset):
    protocol = protocols.get(dataset)
    headline = protocol.norms[0]
    gt, _ = synthetic_faces.sample_landmarks(0, len(ERRORS))
    boxes = np.asarray(geometry.tight_box(gt))
    scale = metrics.normalizer(gt, headline, boxes=None if headline == "inter_ocular" else boxes)
    # Every point shifted by the face's error times its headline normaliser.
    pred = gt + (ERRORS * np.asarray(scale))[:, None, None] * np.array([1.0, 0.0], np.float32)
    collected = {
        "outputs": {"d": pred},
        "landmarks": gt,
        "visible": np.ones(gt.shape[:2], np.float32),
        "bbox": boxes,
        "subsets": {},
    }
    scores = evaluate.score_all(collected, ["d"], protocol)["d"]
    assert tuple(scores) == protocol.norms
    auc, fr = protocol.auc_threshold, protocol.failure_threshold
    for norm in protocol.norms:
        assert set(scores[norm]) == {"num_examples", "nme", f"auc@{auc:g}", f"failure_rate@{fr:g}"}
    score = scores[headline]
    np.testing.assert_allclose(score["nme"], ERRORS.mean(), rtol=1e-5)
    expected_auc = np.mean(np.maximum(auc - ERRORS, 0.0)) / auc
    np.testing.assert_allclose(score[f"auc@{auc:g}"], expected_auc, rtol=1e-4)
    assert score[f"failure_rate@{fr:g}"] == pytest.approx(np.mean(ERRORS > fr))
    for norm in protocol.norms[1:]:  # the other normalisations measure the same faces otherwise
        assert not np.isclose(scores[norm]["nme"], score["nme"])


@pytest.mark.parametrize(
    "name, dataset",
    [
        ("wflw", "wflw"),
        ("w300_split1", "ibug_300w/split1"),
        ("w300_split2", "ibug_300w/split2"),
        ("cofw29", "cofw/cofw29"),
        ("cofw68", "cofw/cofw68"),
        ("aflw19", "aflw"),
        ("menpo", "menpo"),
        ("w300vw", "ibug_300vw"),
    ],
)
def test_configs_evaluate_with_their_datasets_protocol(name, dataset):
    config = importlib.import_module(f"sphm_jax.training.configs.{name}").get_config()
    protocol = protocols.get(dataset)
    assert config.nme_norm == protocol.norms[0]
    assert (config.auc_threshold, config.failure_threshold) == (
        protocol.auc_threshold,
        protocol.failure_threshold,
    )
    assert tuple(config.eval_splits) == tuple(split for _, split in protocol.splits)
    assert tuple(config.subset_features) == protocol.subset_features
