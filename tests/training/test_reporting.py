"""Tests for sphm_jax.training.reporting (the guard and logs of whole runs are in tests/training/test_train.py)."""

import numpy as np

from sphm_jax.training import reporting


def test_describe_nonfinite_names_the_loss_and_the_gradient_norm():
    finite = {"loss": np.bool_(False), "grad_norm": np.bool_(False), "variables": np.ones(1, bool)}
    record = {"step": 3, "loss": np.nan, "grad_norm": np.inf, "finite": finite}
    message = reporting.describe_nonfinite(record, ["params/w"])
    assert message.startswith(
        "training stopped at step 3: the loss is nan; the gradient norm is inf"
    )
    assert reporting.describe_nonfinite({**record, "step": 0}, ["params/w"]) is None
