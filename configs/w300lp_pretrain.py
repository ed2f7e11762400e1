"""300W-LP (61,225 pre-warped images) pre-training for the 300W protocols; scored on 300W Split II's test set."""

from configs import default


def get_config():
    config = default.get_config()
    config.dataset = "ibug_300w_lp"
    config.eval_dataset = "ibug_300w/split2"
    config.eval_splits = ("test_common+test_challenge",)
    config.num_epochs = 20
    config.lr_drop_epochs = (10, 16)
    config.nme_norm = "inter_ocular"
    config.auc_threshold = 0.07
    config.failure_threshold = 0.10
    return config
