"""WFLW (98 points): 7,500 train / 2,500 test; NME inter-ocular, AUC and failure rate at 0.10, per attribute."""

from sphm_jax.data import protocols
from sphm_jax.training.configs import default


def get_config():
    config = default.get_config()
    config.dataset = "wflw"
    protocols.configure(config, config.dataset)
    return config
