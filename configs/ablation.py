"""The paper's Table 2 ablation over any dataset config: --config=configs/ablation.py:ROW[,DATASET].

ROW: baseline (quantized targets, argmax + 0.25), hm (+ proposed heatmaps),
hm_no_lsa (+ proposed heatmaps, decoded without the local soft-argmax of
§3.3), siamese (+ Siamese training). DATASET names a config in this folder
(default: synthetic).
"""

import importlib

ROWS = {
    "baseline": dict(quantize="round", decoder="argmax_quarter", siamese=False),
    "hm": dict(quantize=None, decoder="local_softargmax", siamese=False),
    "hm_no_lsa": dict(quantize=None, decoder="argmax_quarter", siamese=False),
    "siamese": dict(quantize=None, decoder="local_softargmax", siamese=True),
}


def get_config(arg="siamese,synthetic"):
    row, _, dataset = arg.partition(",")
    if row not in ROWS:
        raise ValueError(f"unknown ablation row {row!r}; choose one of {sorted(ROWS)}")
    config = importlib.import_module(
        f"sphm_jax.training.configs.{dataset or 'synthetic'}"
    ).get_config()
    for key, value in ROWS[row].items():
        setattr(config, key, value)
    return config
