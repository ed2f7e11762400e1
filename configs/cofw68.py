"""COFW-68 (the 507 COFW test images with 68 points) as evaluation of a 300W model: NME by the box, AUC at 0.07."""

from configs import w300_split1


def get_config():
    config = w300_split1.get_config()
    config.eval_dataset = "cofw/cofw68"
    config.eval_splits = ("test",)
    config.nme_norm = "box"
    config.subset_features = ()
    return config
