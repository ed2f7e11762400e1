"""The evaluation protocol of each dataset (the paper's §5 and appendix B), in one table.

A protocol names the NME normalisations to report (the first one is the
headline and the one training evaluates with), the AUC cut-off, the failure
threshold, the splits to score (a label and its TFDS split string) and the
metadata features to score per value. configs/ and sphm_jax.evaluate both
read it, so a training run and a later evaluation use the same numbers.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Protocol:
    norms: tuple[str, ...]
    auc_threshold: float
    failure_threshold: float
    splits: tuple[tuple[str, str], ...] = (("test", "test"),)
    subset_features: tuple[str, ...] = ()


_300W = dict(norms=("inter_ocular", "box"), auc_threshold=0.07, failure_threshold=0.10)

PROTOCOLS = {
    "wflw": Protocol(("inter_ocular",), 0.10, 0.10, subset_features=("attributes",)),
    # Split I tests on the 600 images of 300W (indoor and outdoor folders).
    "ibug_300w/split1": Protocol(**_300W, subset_features=("subset",)),
    "ibug_300w/split2": Protocol(
        **_300W,
        splits=(
            ("common", "test_common"),
            ("challenge", "test_challenge"),
            ("full", "test_common+test_challenge"),
        ),
    ),
    "cofw/cofw29": Protocol(("inter_ocular",), 0.10, 0.10),
    "cofw/cofw68": Protocol(("box",), 0.07, 0.10),
    # Menpo 2D frontal: every annotated image is a test image.
    "menpo": Protocol(("box",), 0.07, 0.10, splits=(("train", "train"), ("test", "test"))),
    "aflw": Protocol(("diagonal", "box"), 0.07, 0.10, subset_features=("frontal",)),
    "ibug_300vw": Protocol(("inter_ocular",), 0.08, 0.10, splits=(("category C", "test_c"),)),
    "synthetic_faces": Protocol(("inter_ocular",), 0.10, 0.10),
}
# A builder name without its config means the builder's default config.
ALIASES = {"ibug_300w": "ibug_300w/split1", "cofw": "cofw/cofw29"}
DEFAULT = Protocol(("inter_ocular",), 0.10, 0.10)


def get(dataset: str) -> Protocol:
    """The protocol of a TFDS name ("name", "name/config"); DEFAULT for datasets without one."""
    name = ALIASES.get(dataset, dataset)
    if name in PROTOCOLS:
        return PROTOCOLS[name]
    return PROTOCOLS.get(name.split("/")[0], DEFAULT)


def configure(config, dataset: str):
    """Sets a training config's evaluation fields from the protocol of `dataset`; returns config."""
    protocol = get(dataset)
    config.eval_splits = tuple(split for _, split in protocol.splits)
    config.nme_norm = protocol.norms[0]
    config.auc_threshold = protocol.auc_threshold
    config.failure_threshold = protocol.failure_threshold
    config.subset_features = protocol.subset_features
    return config
