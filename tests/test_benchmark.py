"""Tests for sphm_jax.benchmark: the JSON lines of every --what, their FLOP fields, and the torch
reference's loss parity."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags

from sphm_jax import augment, benchmark, convert
from sphm_jax.training import train
from tests.helpers import ROOT, tiny_config

FIELDS = {"what", "impl", "images_per_s", "batch_size", "device", "compile_s", "step_ms"}


@pytest.fixture(scope="module")
def data_dir(tiny_data_dir):
    return tiny_data_dir  # synthetic_faces/tiny, built once per session (tests/conftest.py)


def check_record(r, what, impl):
    assert FIELDS <= set(r) and r["what"] == what and r["impl"] == impl
    assert r["images_per_s"] > 0 and r["compile_s"] >= 0
    assert np.isclose(r["images_per_s"], r["batch_size"] / (r["step_ms"] / 1e3))
    json.dumps(r)  # every field is JSON


def test_every_what_gives_json_records_with_the_required_fields(data_dir):
    records = list(
        benchmark.run(tiny_config(data_dir), "all", "none", 1, input_batches=2, decode_faces=4)
    )
    assert [(r["what"], r.get("method")) for r in records] == [
        ("input", None),
        ("decode", "local_softargmax"),
        ("decode", "max"),
        ("decode", "argmax"),
        ("eval", None),
        ("train", None),
    ]
    for r in records:
        check_record(r, r["what"], "jax")
    train_record = records[-1]
    assert train_record["siamese"] and train_record["batch_size"] == 8
    assert train_record["flops_per_step"] > 0 and train_record["tflops"] > 0
    assert train_record["peak_tflops"] is None and train_record["peak_fraction"] is None  # CPU
    summary = benchmark.summary(records)
    assert summary["input_over_train"] > 0 and summary["train_jax_over_torch"] is None


def test_loop_times_the_training_loop_across_an_epoch_end(data_dir):
    config = tiny_config(data_dir)  # 64 examples: 8 steps of 8 per epoch
    (r,) = benchmark.run(config, "loop", "none", 1, loop_steps=30)
    check_record(r, "loop", "jax")
    assert r["steps_per_epoch"] == 8 and r["interval_end_steps"] == [20, 30]
    assert len(r["interval_images_per_s"]) == 2 and min(r["interval_images_per_s"]) > 0
    assert r["cpu"] and "INDIVIDUAL_CONVOLUTION" in r["xla_flags"]


def test_cli_prints_one_json_line_per_measurement_and_a_summary():
    out = subprocess.run(
        [sys.executable, "-m", "sphm_jax.benchmark", "--config", "configs/tiny.py"]
        + ["--what", "decode", "--repeats", "1", "--decode_faces", "2"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["what"] for r in lines] == ["decode"] * 3 + ["summary"]
    check_record(lines[0], "decode", "jax")
    assert lines[-1]["decode_time_over_max"] > 0


def test_flops_fields_follow_the_device_kind_and_dtype():
    def fields(kind, dtype="bfloat16", flops=2e12):
        return benchmark.flops_fields(flops, 2.0, kind, dtype)  # a 2 s step

    h100 = fields("NVIDIA H100 80GB HBM3")
    # Achieved TFLOP/s per device on any device; the fraction is of that device's peak.
    assert h100["tflops"] == fields("cpu")["tflops"] == 1.0
    assert h100["peak_fraction"] == 1.0 / h100["peak_tflops"]
    assert fields("nvidia h100 80gb hbm3") == h100  # the kind as torch or JAX spells it
    # GPUs run float32 as TF32 at half their bfloat16 rate; TPUs run both in bfloat16 passes.
    assert fields("NVIDIA H100 80GB HBM3", "float32")["peak_tflops"] == h100["peak_tflops"] / 2
    assert fields("TPU v4", "float32") == fields("TPU v4", "bfloat16")
    # A name inside a longer one does not shadow it: every known device finds its own peaks.
    for name, bf16, f32 in benchmark.PEAK_TFLOPS:
        assert fields(f"vendor {name} rev", "bfloat16")["peak_tflops"] == bf16
        assert fields(f"vendor {name} rev", "float32")["peak_tflops"] == f32
    # Unknown devices (CPUs) keep the achieved figure; without XLA's flop count, nothing.
    assert fields("cpu") == {"tflops": 1.0, "peak_tflops": None, "peak_fraction": None}
    assert fields("NVIDIA H100 80GB HBM3", flops=None) == dict.fromkeys(h100)


def test_importing_defines_no_flags():
    # Tests import the benchmark as a library; its flags belong to `python -m sphm_jax.benchmark`.
    assert not {"what", "reference", "repeats", "decode_faces", "sweep"} & set(flags.FLAGS)


def test_bfloat16_runs_the_network_in_bfloat16_and_keeps_float32_parameters():
    config = tiny_config(dtype="bfloat16")
    cfg = train.StepConfig.from_config(config, 68)
    model = train.create_model(config, 68)
    state = jax.eval_shape(
        lambda r: train.create_train_state(r, config, model, 10), jax.random.key(0)
    )
    batch = benchmark.synthetic_batch(config, 68, 2)
    batch = {k: batch[k] for k in train.TRAIN_KEYS}
    traced = jax.jit(lambda s, b: train.train_step(s, b, cfg)).trace(state, batch)
    convolutions = [
        line for line in str(traced.jaxpr).splitlines() if "conv_general_dilated" in line
    ]
    assert convolutions and all(":bf16[" in line for line in convolutions)
    new_state, metrics = traced.out_info  # shapes and dtypes, without compiling
    leaves = jax.tree_util.tree_leaves((new_state.params, new_state.opt_state))
    assert {x.dtype for x in leaves} <= {jnp.dtype(jnp.float32), jnp.dtype(jnp.int32)}
    # Metrics: float32 values, plus the non-finite guard's flags.
    assert {x.dtype for x in jax.tree_util.tree_leaves(metrics)} <= {
        jnp.dtype(jnp.float32),
        jnp.dtype(jnp.bool_),
    }


@pytest.mark.parametrize("siamese", [True, False])
def test_torch_reference_loss_equals_the_jax_step_loss_on_the_same_weights_and_views(siamese):
    torch = pytest.importorskip("torch")
    pytest.importorskip("kornia")
    pytest.importorskip("face_alignment")
    from sphm_jax.benchmark import torch_reference  # pylint: disable=g-import-not-at-top

    config = tiny_config(siamese=siamese)
    config.model.num_stacks = 2 if siamese else 1  # two stacks: the inter-stack convs bl0, al0 too
    cfg = train.StepConfig.from_config(config, 68)
    torch.manual_seed(0)
    net = torch_reference.build_fan(
        config.model.num_stacks, 68, config.model.width, config.model.depth
    )
    model, variables = convert.fan_from_torch({k: v.detach() for k, v in net.state_dict().items()})
    state = train.create_train_state(jax.random.key(0), config, model, 10)
    state = state.replace(params=variables["params"], batch_stats=variables["batch_stats"])
    batch = benchmark.synthetic_batch(config, 68, 4)
    _, metrics = jax.jit(lambda s, b: train.train_step(s, b, cfg))(
        state, {k: batch[k] for k in train.TRAIN_KEYS}
    )

    # The views train_step draws at step 0, handed to the reference.
    key = jax.random.fold_in(state.key, 0)
    images = jnp.asarray(batch["image"], jnp.float32) / 255.0
    views = jax.jit(  # one compilation instead of one per eager op
        lambda images: [
            augment.random_views(
                k, images, batch["landmarks"], batch["visible"], cfg.augment, cfg.flip_permutation
            )
            for k in jax.random.split(key, 2 if siamese else 1)
        ]
    )(images)

    def as_torch(x):
        return torch.from_numpy(np.array(x))

    inputs = as_torch(np.concatenate([v[0] for v in views]).transpose(0, 3, 1, 2))
    with torch.no_grad():
        expected = torch_reference.loss(
            net.train(),
            inputs,
            as_torch(np.stack([v[3] for v in views])),
            as_torch(np.stack([v[4] for v in views])),
            as_torch(batch["landmarks"]),
            as_torch(batch["visible"]),
            torch_reference.step_description(cfg, config.seed),
        )
    np.testing.assert_allclose(float(metrics["loss"]), float(expected), rtol=2e-4)


def test_torch_reference_trains():
    torch = pytest.importorskip("torch")
    pytest.importorskip("kornia")
    pytest.importorskip("face_alignment")
    call, to_record = benchmark.torch_train(tiny_config(), 68, 1e9, None)
    (record,) = benchmark._measured([(call, to_record)], 1)
    check_record(record, "train", "torch")
    assert record["device"] == "cpu" and not record["amp"] and torch.get_num_threads() >= 1
