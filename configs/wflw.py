"""WFLW (98 points): 7,500 train / 2,500 test; NME inter-ocular, AUC and failure rate at 0.10, per attribute."""

from configs import default


def get_config():
    config = default.get_config()
    config.dataset = "wflw"
    config.eval_splits = ("test",)
    config.nme_norm = "inter_ocular"
    config.auc_threshold = 0.10
    config.failure_threshold = 0.10
    config.subset_features = ("attributes",)
    return config
