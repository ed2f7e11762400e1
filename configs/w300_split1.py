"""300W Split I: 3,837 train / 600 test (the 300W private set, indoor + outdoor), from 300W-LP pre-training.

Set --config.init_checkpoint=<workdir of configs/w300lp_pretrain.py>/checkpoints.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.dataset = "ibug_300w/split1"
    config.eval_splits = ("test",)
    config.nme_norm = "inter_ocular"
    config.auc_threshold = 0.07
    config.failure_threshold = 0.10
    config.subset_features = ("subset",)
    return config
