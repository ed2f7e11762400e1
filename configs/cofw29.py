"""COFW-29: 1,345 train / 507 test; NME inter-ocular (points 8, 9), failure rate at 0.10."""

from configs import default


def get_config():
    config = default.get_config()
    config.dataset = "cofw/cofw29"
    config.eval_splits = ("test",)
    config.nme_norm = "inter_ocular"
    config.auc_threshold = 0.10
    config.failure_threshold = 0.10
    return config
