"""300W Split I: 3,837 train / 600 test (the 300W private set, indoor + outdoor), from 300W-LP pre-training.

Set --config.init_checkpoint=<workdir of configs/w300lp_pretrain.py>/checkpoints.
"""

from sphm_jax.data import protocols
from sphm_jax.training.configs import default


def get_config():
    config = default.get_config()
    config.dataset = "ibug_300w/split1"
    protocols.configure(config, config.dataset)
    return config
