"""AFLW-19: 20,000 train / 4,386 test; NME by the box diagonal, full set and the frontal subset."""

from sphm_jax.data import protocols
from sphm_jax.training.configs import default


def get_config():
    config = default.get_config()
    config.dataset = "aflw"
    protocols.configure(config, config.dataset)
    return config
