"""Tests for sphm_jax.training.optimizer."""

import numpy as np
import pytest

from sphm_jax.training import optimizer
from tests.helpers import tiny_config


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_learning_rate_schedules_warm_up_then_follow_their_shape(schedule):
    config = tiny_config(num_train_steps=100, learning_rate=1e-3, warmup_steps=10)
    config.lr_schedule = schedule
    lr = optimizer.learning_rate_schedule(config, steps_per_epoch=8)
    values = np.asarray([float(lr(s)) for s in range(101)])
    np.testing.assert_allclose(values[:11], np.linspace(0.0, 1e-3, 11), rtol=1e-5, atol=1e-12)
    if schedule == "step":  # x0.1 at epochs 25 and 40 of 50: steps 50 and 80 of 100
        np.testing.assert_allclose(values[[49, 50, 79, 80]], [1e-3, 1e-4, 1e-4, 1e-5], rtol=1e-5)
    else:  # a half cosine from the peak at step 10 down to 0 at step 100
        expected = 0.5e-3 * (1 + np.cos(np.pi * (np.arange(10, 101) - 10) / 90))
        np.testing.assert_allclose(values[10:], expected, rtol=1e-4, atol=1e-9)
