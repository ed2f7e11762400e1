"""Menpo 2D (68-point frontal subset) as evaluation of a 300W model: NME by the box, AUC at 0.07."""

from configs import w300_split1


def get_config():
    config = w300_split1.get_config()
    config.eval_dataset = "menpo"
    config.eval_splits = ("train", "test")
    config.nme_norm = "box"
    config.subset_features = ()
    return config
