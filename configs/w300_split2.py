"""300W Split II: 3,148 train / 689 test = 554 common + 135 challenge, from 300W-LP pre-training.

Set --config.init_checkpoint=<workdir of configs/w300lp_pretrain.py>/checkpoints.
"""

from sphm_jax.data import protocols
from sphm_jax.training.configs import default


def get_config():
    config = default.get_config()
    config.dataset = "ibug_300w/split2"
    protocols.configure(config, config.dataset)
    return config
