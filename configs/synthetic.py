"""The embedded default: synthetic_faces (built on first use), trained and evaluated in under 10
minutes on a 2-core CPU, to about 5 % NME (inter-ocular).

The paper's method and augmentation as in default.py (continuous targets, local soft-argmax,
Siamese training), sized for the CPU: a 1-stack FAN of width 64 at 64 px with 16 px heatmaps, and
a schedule made for a short run (warm-up, then cosine decay). At 128 px the same minutes buy a
quarter of the steps and end far higher (docs/training.md). On an accelerator use
configs/default.py's sizes.
"""

from sphm_jax.training.configs import default


def get_config():
    config = default.get_config()
    config.dataset = "synthetic_faces"
    config.image_size = 64
    config.heatmap_size = 16
    config.model.num_stacks = 1
    config.model.width = 64
    config.model.depth = 3
    config.batch_size = 32
    config.num_train_steps = 1200
    config.learning_rate = 2e-3
    config.lr_schedule = "cosine"
    config.warmup_steps = 50
    config.log_every_steps = 100
    config.eval_every_steps = 10_000
    config.checkpoint_every_steps = 400
    return config
