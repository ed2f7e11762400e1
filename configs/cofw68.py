"""COFW-68 (the 507 COFW test images with 68 points) as evaluation of a 300W model: NME by the box, AUC at 0.07."""

from sphm_jax.data import protocols
from sphm_jax.training.configs import w300_split1


def get_config():
    config = w300_split1.get_config()
    config.eval_dataset = "cofw/cofw68"
    protocols.configure(config, config.eval_dataset)
    return config
