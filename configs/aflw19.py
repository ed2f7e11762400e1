"""AFLW-19: 20,000 train / 4,386 test; NME by the box diagonal, full set and the frontal subset."""

from configs import default


def get_config():
    config = default.get_config()
    config.dataset = "aflw"
    config.eval_splits = ("test",)
    config.nme_norm = "diagonal"
    config.auc_threshold = 0.07
    config.failure_threshold = 0.10
    config.subset_features = ("frontal",)
    return config
