"""Orbax checkpoints of variables plus model config."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sphm_jax.models import FAN, abstract_variables
from sphm_jax.training import checkpoints


def small_fan_variables(seed=0):
    """A tiny FAN and random variables for it, filled from numpy (fast)."""
    model = FAN(num_stacks=2, num_landmarks=19, width=16, depth=1)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    rng = np.random.default_rng(seed)
    variables = jax.tree_util.tree_map(
        lambda s: jnp.asarray(rng.uniform(0.5, 1.5, s.shape), s.dtype), shapes
    )
    return model, variables


def assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def test_save_restore_roundtrip(tmp_path):
    tree = {
        "params": {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3, jnp.bfloat16)},
        "batch_stats": {"n": jnp.array([1, 2], jnp.int32)},
    }
    config = {"num_stacks": 2, "num_landmarks": 98, "width": 256, "depth": 4}
    checkpoints.save(tmp_path / "ckpt", 7, tree, config)
    got_config, got = checkpoints.restore(tmp_path / "ckpt")
    assert got_config == config
    assert_trees_equal(got, tree)


def test_latest_and_chosen_steps(tmp_path):
    for step in (1, 5, 3):
        checkpoints.save(tmp_path, step, {"x": jnp.full(2, float(step))}, {"step": step})
    assert checkpoints.latest_step(tmp_path) == 5
    assert checkpoints.restore(tmp_path)[0] == {"step": 5}
    config, tree = checkpoints.restore(tmp_path, step=3)
    assert config == {"step": 3} and float(tree["x"][0]) == 3.0
    with pytest.raises(FileNotFoundError, match=r"no checkpoint for step 4.*\[1, 3, 5\]"):
        checkpoints.restore(tmp_path, step=4)
    with pytest.raises(FileExistsError, match="already holds a checkpoint for step 3"):
        checkpoints.save(tmp_path, 3, {"x": jnp.zeros(2)}, {"step": -1})
    assert checkpoints.restore(tmp_path, step=3)[0] == {"step": 3}


def test_restore_into_target_dtypes(tmp_path):
    checkpoints.save(tmp_path, 0, {"w": jnp.arange(4.0)}, {})
    target = {"w": jax.ShapeDtypeStruct((4,), jnp.bfloat16)}
    _, tree = checkpoints.restore(tmp_path, target=target)
    assert tree["w"].dtype == jnp.bfloat16


def test_load_model_roundtrip(tmp_path):
    model, variables = small_fan_variables()
    checkpoints.save(tmp_path / "fan", 0, variables, model.config())
    loaded, got = checkpoints.load_model(tmp_path / "fan")
    assert loaded == model
    assert_trees_equal(got, variables)
    assert checkpoints.load_model(tmp_path / "fan", dtype=jnp.bfloat16)[0].dtype == jnp.bfloat16


def test_missing_or_empty_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint directory"):
        checkpoints.restore(tmp_path / "absent")
    assert not (tmp_path / "absent").exists()  # Restoring creates nothing.
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty.*holds no checkpoint"):
        checkpoints.load_model(tmp_path / "empty")
    assert checkpoints.latest_step(tmp_path / "empty") is None


def test_non_finite_variables_are_never_saved(tmp_path):
    model, variables = small_fan_variables()
    variables["params"]["conv1"]["kernel"] = (
        variables["params"]["conv1"]["kernel"].at[0].set(jnp.nan)
    )
    with pytest.raises(
        FloatingPointError,
        match=r"refusing to save step 2: non-finite values "
        r"in params/conv1/kernel$",
    ):
        checkpoints.save(tmp_path, 2, variables, model.config())
    assert checkpoints.latest_step(tmp_path) is None


def test_restoring_into_another_model_size_names_both(tmp_path):
    model, variables = small_fan_variables()
    checkpoints.save(tmp_path / "fan", 0, variables, model.config())
    wider = FAN(num_stacks=2, num_landmarks=19, width=32, depth=1)
    with pytest.raises(
        ValueError,
        match=r"fan: checkpoint holds FAN\(\{'num_stacks': 2, "
        r"'num_landmarks': 19, 'width': 16, 'depth': 1\}\), whose variables do not "
        r"fit the requested model: batch_stats/bn1/mean saved \(4,\), target \(8,\);.* \(229 differences\)",
    ):
        checkpoints.restore(tmp_path / "fan", target=abstract_variables(wider))
    with pytest.raises(
        ValueError, match=r"holds FAN\(.*'width': 16.*\), expected FAN\(.*'width': 32"
    ):
        checkpoints.check_model_config(tmp_path / "fan", wider.config())
    checkpoints.check_model_config(tmp_path / "fan", model.config())  # the same FAN passes
