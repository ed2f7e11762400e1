"""A few seconds of everything, for tests and smoke runs: tiny synthetic faces, a tiny FAN, a few steps."""

from sphm_jax.training.configs import default


def get_config():
    config = default.get_config()
    config.dataset = "synthetic_faces/tiny"
    config.image_size = 64
    config.heatmap_size = 16
    config.sigma = 1.5
    config.model.num_stacks = 1
    config.model.width = 16
    config.model.depth = 2
    config.batch_size = 8
    config.num_train_steps = 6
    config.learning_rate = 1e-3
    config.log_every_steps = 1
    config.eval_every_steps = 1000
    config.checkpoint_every_steps = 1000
    return config
