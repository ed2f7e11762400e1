"""300W-LP (61,225 pre-warped images) pre-training for the 300W protocols; scored on 300W Split II's test set."""

from sphm_jax.data import protocols
from sphm_jax.training.configs import default


def get_config():
    config = default.get_config()
    config.dataset = "ibug_300w_lp"
    config.eval_dataset = "ibug_300w/split2"
    protocols.configure(config, config.eval_dataset)
    config.eval_splits = ("test_common+test_challenge",)  # the full set: one pass, not three
    config.num_epochs = 20
    config.lr_drop_epochs = (10, 16)
    return config
