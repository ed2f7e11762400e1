"""300VW as evaluation of a 300W model: category C, NME inter-ocular, AUC at 0.08."""

from sphm_jax.data import protocols
from sphm_jax.training.configs import w300_split1


def get_config():
    config = w300_split1.get_config()
    config.eval_dataset = "ibug_300vw"
    protocols.configure(config, config.eval_dataset)
    return config
