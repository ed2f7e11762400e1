"""300W Split II: 3,148 train / 689 test = 554 common + 135 challenge, from 300W-LP pre-training.

Set --config.init_checkpoint=<workdir of configs/w300lp_pretrain.py>/checkpoints.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.dataset = "ibug_300w/split2"
    config.eval_splits = ("test_common", "test_challenge", "test_common+test_challenge")
    config.nme_norm = "inter_ocular"
    config.auc_threshold = 0.07
    config.failure_threshold = 0.10
    return config
