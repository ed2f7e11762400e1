"""COFW-29: 1,345 train / 507 test; NME inter-ocular (points 8, 9), failure rate at 0.10."""

from sphm_jax.data import protocols
from sphm_jax.training.configs import default


def get_config():
    config = default.get_config()
    config.dataset = "cofw/cofw29"
    protocols.configure(config, config.dataset)
    return config
