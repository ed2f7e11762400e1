"""The embedded default: synthetic_faces (built on first use, about 80 s), trained and evaluated in
under 10 minutes on a 2-core CPU. A 1-stack FAN of width 64 at 128 px with 32 px heatmaps; on an
accelerator use configs/default.py's sizes (--config.image_size=256 --config.heatmap_size=64 ...).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.dataset = "synthetic_faces"
    config.image_size = 128
    config.heatmap_size = 32
    config.model.num_stacks = 1
    config.model.width = 64
    config.model.depth = 3
    config.batch_size = 32
    config.num_train_steps = 450
    config.learning_rate = 1e-3
    config.log_every_steps = 25
    config.eval_every_steps = 10_000
    config.checkpoint_every_steps = 200
    return config
