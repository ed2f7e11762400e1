"""FAN in Flax against face-alignment's PyTorch FAN, and its own properties."""

import copy

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
fa_models = pytest.importorskip("face_alignment.models")

from sphm_jax import (
    convert,  # pylint: disable=g-import-not-at-top
    heatmaps,
)
from sphm_jax.models import FAN, count_params

torch.set_num_threads(2)

FAN2_PARAMS = 12_106_504
FAN4_PARAMS = 23_820_176


def torch_fan(num_stacks, num_landmarks=68, seed=0):
    """face-alignment FAN with random weights, BN statistics and BN affines."""
    torch.manual_seed(seed)
    net = fa_models.FAN(num_stacks)
    for i in range(num_stacks):  # Rebuild the heads for other landmark counts.
        if num_landmarks != 68:
            setattr(net, f"l{i}", torch.nn.Conv2d(256, num_landmarks, 1))
            if i < num_stacks - 1:
                setattr(net, f"al{i}", torch.nn.Conv2d(num_landmarks, 256, 1))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    return net


def images(size, n=2, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, 3)).astype(np.float32)


def random_variables(model, x, seed=0):
    """Random FAN variables from numpy: an eager `init` compiles every op, slowly."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if name == "kernel":  # Unit-variance activations, as at initialisation.
            return rng.normal(0.0, np.prod(shape[:-1]) ** -0.5, shape).astype(np.float32)
        if name in ("scale", "var"):
            return rng.uniform(0.5, 1.5, shape).astype(np.float32)
        return rng.normal(0.0, 0.1, shape).astype(np.float32)

    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    return jax.tree_util.tree_map_with_path(fill, shapes)


def run_torch(net, x, train):
    net.train(train)
    with torch.no_grad():
        outs = net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    return [o.numpy().transpose(0, 2, 3, 1) for o in outs]


def peak_margin(hm):
    """Gap between the largest and second-largest pixel of each map, [N, K]."""
    flat = np.moveaxis(hm, -1, 1).reshape(*hm.shape[:1], hm.shape[-1], -1)
    top2 = np.sort(flat, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def assert_parity(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == jnp.float32 and g.shape == e.shape
        scale = np.abs(e).max()
        assert np.abs(np.asarray(g) - e).max() <= 1e-5 * scale
        # Argmax near-ties may flip under rounding; compare where the peak is clear.
        clear = peak_margin(e) > 1e-3 * scale
        assert clear.mean() > 0.5  # Else the landmark check below means little.
        diff = np.abs(np.asarray(heatmaps.decode(g)) - np.asarray(heatmaps.decode(e)))
        assert diff[clear].max() <= 1e-3


@pytest.mark.parametrize("num_stacks,size", [(1, 128), (2, 64), (4, 64)])
def test_eval_matches_pytorch(num_stacks, size):
    net = torch_fan(num_stacks)
    x = images(size)
    model, variables = convert.fan_from_torch(net.state_dict())
    assert model.num_stacks == num_stacks
    assert_parity(model.apply(variables, x, train=False), run_torch(net, x, False))


def test_train_mode_matches_pytorch():
    net = torch_fan(2, seed=1)
    x = images(64, n=8, seed=1)
    model, variables = convert.fan_from_torch(net.state_dict())
    got, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    # Batch statistics over few pixels are ill-conditioned: torch float32 itself
    # is ~3e-5 off, so the reference is the same torch net run in float64.
    exact = run_torch(copy.deepcopy(net).double(), x.astype(np.float64), True)
    assert_parity(got, [e.astype(np.float32) for e in exact])
    # Same momentum convention: one step moves the running means alike. (torch
    # updates running_var with the unbiased variance, Flax with the biased one.)
    run_torch(net, x, True)
    np.testing.assert_allclose(
        updates["batch_stats"]["m1"]["b2_plus_1"]["bn2"]["mean"],
        net.m1.b2_plus_1.bn2.running_mean.numpy(),
        rtol=1e-4,
        atol=1e-6,
    )


def test_98_landmarks_match_pytorch():
    net = torch_fan(2, num_landmarks=98, seed=2)
    x = images(64, seed=2)
    model, variables = convert.fan_from_torch(net.state_dict())
    assert model.num_landmarks == 98
    got = model.apply(variables, x)
    assert got[-1].shape == (2, 16, 16, 98)
    assert_parity(got, run_torch(net, x, False))


@pytest.mark.parametrize("num_stacks,expected", [(2, FAN2_PARAMS), (4, FAN4_PARAMS)])
def test_parameter_count_matches_pytorch(num_stacks, expected):
    model = FAN(num_stacks=num_stacks, num_landmarks=68)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    net = fa_models.FAN(num_stacks)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == expected
    assert count_params(shapes["params"]) == expected


@pytest.mark.parametrize("num_landmarks", [19, 29])
def test_other_landmark_counts_and_shapes(num_landmarks):
    model = FAN(num_stacks=3, num_landmarks=num_landmarks, width=32, depth=2)
    x = jnp.zeros((2, 32, 48, 3))
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    outs = jax.eval_shape(model.apply, shapes, x)
    assert [o.shape for o in outs] == [(2, 8, 12, num_landmarks)] * 3
    assert shapes["params"]["l2"]["kernel"].shape == (1, 1, 32, num_landmarks)
    assert "bl2" not in shapes["params"] and "al1" in shapes["params"]


def test_bfloat16_compute_keeps_float32_params_and_outputs():
    x = images(16, n=1)
    f32 = FAN(num_stacks=2, width=16, depth=2)
    variables = random_variables(f32, x)
    bf16 = f32.clone(dtype=jnp.bfloat16)
    assert jax.tree_util.tree_all(
        jax.tree_util.tree_map(
            lambda a, b: a.dtype == b.dtype == jnp.float32,
            variables,
            jax.eval_shape(bf16.init, jax.random.key(0), x),
        )
    )
    low, high = bf16.apply(variables, x), f32.apply(variables, x)
    assert all(o.dtype == jnp.float32 for o in low)
    scale = np.abs(high[-1]).max()
    assert 0 < np.abs(low[-1] - high[-1]).max() <= 0.1 * scale


def test_bn_axis_name_pools_statistics_across_devices():
    x = images(8, n=4)
    model = FAN(num_stacks=1, width=16, depth=1)
    variables = random_variables(model, x)
    whole, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    # One image per "device": with the axis name the batch statistics are global.
    sharded = model.clone(bn_axis_name="devices")
    per_device = jax.vmap(
        lambda xi: sharded.apply(variables, xi, train=True, mutable=["batch_stats"])[0],
        axis_name="devices",
    )(x[:, None])
    np.testing.assert_allclose(per_device[0][:, 0], whole[0], rtol=1e-4, atol=1e-5)


def test_train_mode_needs_mutable_batch_stats():
    model = FAN(num_stacks=1, width=16, depth=1)
    x = images(8, n=2)
    variables = random_variables(model, x)
    with pytest.raises(flax.errors.ModifyScopeVariableError, match="batch_stats"):
        model.apply(variables, x, train=True)


def test_input_size_must_fit_hourglass():
    model = FAN(num_stacks=1, width=32, depth=4)
    with pytest.raises(ValueError, match="divisible by 64"):
        jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 96, 96, 3)))
