"""The config's optimiser and learning-rate schedule (§5.1's drops, or warm-up then cosine)."""

from __future__ import annotations

import jax.numpy as jnp
import optax

OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd}
LR_SCHEDULES = ("step", "cosine")


def optimizer(config, steps_per_epoch: int) -> optax.GradientTransformation:
    """config.optimizer (one of OPTIMIZERS) on the config's schedule."""
    return OPTIMIZERS[config.optimizer](learning_rate_schedule(config, steps_per_epoch))


def learning_rate_schedule(config, steps_per_epoch: int) -> optax.Schedule:
    """The config's schedule over the run's steps, after `warmup_steps` of linear warm-up.

    "step": lr, times lr_drop_factor at each of lr_drop_epochs (scaled when
    num_train_steps is set); "cosine": lr decayed to 0 along a half cosine.
    """
    total = num_train_steps(config, steps_per_epoch)
    warmup = min(int(config.warmup_steps), total)
    if config.lr_schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, config.learning_rate, warmup, max(total, warmup + 1), end_value=0.0
        )
    epoch_steps = total / config.num_epochs  # a run shortened by num_train_steps keeps the shape
    boundaries = {int(e * epoch_steps): config.lr_drop_factor for e in config.lr_drop_epochs}
    drops = optax.piecewise_constant_schedule(config.learning_rate, boundaries)
    if not warmup:
        return drops
    ramp = optax.linear_schedule(0.0, config.learning_rate, warmup)
    return lambda step: jnp.minimum(ramp(step), drops(step))


def num_train_steps(config, steps_per_epoch: int) -> int:
    if config.num_train_steps > 0:
        return int(config.num_train_steps)
    return int(config.num_epochs * steps_per_epoch)
