"""Tests for sphm_jax.protocols: the paper's evaluation settings per dataset, read by configs/."""

import importlib

import pytest

from sphm_jax import protocols


@pytest.mark.parametrize(
    "dataset, norms, auc, splits",
    [
        ("wflw", ("inter_ocular",), 0.10, ("test",)),
        ("ibug_300w", ("inter_ocular", "box"), 0.07, ("test",)),
        ("ibug_300w/split2", ("inter_ocular", "box"), 0.07, ("common", "challenge", "full")),
        ("cofw", ("inter_ocular",), 0.10, ("test",)),
        ("cofw/cofw68", ("box",), 0.07, ("test",)),
        ("menpo", ("box",), 0.07, ("train", "test")),
        ("aflw", ("diagonal", "box"), 0.07, ("test",)),
        ("ibug_300vw/stride5", ("inter_ocular",), 0.08, ("category C",)),
        ("synthetic_faces/tiny", ("inter_ocular",), 0.10, ("test",)),
        ("pts_folder/landmarks68", ("inter_ocular",), 0.10, ("test",)),
    ],
)
def test_the_papers_protocols(dataset, norms, auc, splits):
    protocol = protocols.get(dataset)
    assert protocol.norms == norms and protocol.auc_threshold == auc
    assert tuple(label for label, _ in protocol.splits) == splits
    assert protocol.failure_threshold == 0.10


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
    config = importlib.import_module(f"sphm_jax.configs.{name}").get_config()
    protocol = protocols.get(dataset)
    assert config.nme_norm == protocol.norms[0]
    assert (config.auc_threshold, config.failure_threshold) == (
        protocol.auc_threshold,
        protocol.failure_threshold,
    )
    assert tuple(config.eval_splits) == tuple(split for _, split in protocol.splits)
    assert tuple(config.subset_features) == protocol.subset_features
