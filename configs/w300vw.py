"""300VW as evaluation of a 300W model: category C, NME inter-ocular, AUC at 0.08."""

from configs import w300_split1


def get_config():
    config = w300_split1.get_config()
    config.eval_dataset = "ibug_300vw"
    config.eval_splits = ("test_c",)
    config.nme_norm = "inter_ocular"
    config.auc_threshold = 0.08
    config.subset_features = ()
    return config
