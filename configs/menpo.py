"""Menpo 2D (68-point frontal subset) as evaluation of a 300W model: NME by the box, AUC at 0.07."""

from sphm_jax.data import protocols
from sphm_jax.training.configs import w300_split1


def get_config():
    config = w300_split1.get_config()
    config.eval_dataset = "menpo"
    protocols.configure(config, config.eval_dataset)
    return config
