"""Tests for sphm_jax.training.xla_cpu: importing changes nothing; apply() and the commands choose the CPU
paths, read from the compiled HLO."""

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp

from sphm_jax.models import FAN
from sphm_jax.training import xla_cpu
from tests.helpers import ROOT, TEST_XLA_FLAGS

# In a process of its own: import every module of sphm_jax, then {setup}, then fan_grad_hlo below.
# TensorFlow is imported before the snapshot: it brings OpenCV, which sets LD_LIBRARY_PATH.
PROBE = """
import importlib, json, os, pkgutil
import jax, tensorflow, sphm_jax
environ, config = dict(os.environ), dict(jax.config.values)
names = [m.name for m in pkgutil.walk_packages(sphm_jax.__path__, "sphm_jax.")]
for name in names:
    importlib.import_module(name)
changed = sorted(k for k in {{*environ, *os.environ}} if environ.get(k) != os.environ.get(k))
changed += sorted(k for k in config if jax.config.values.get(k) != config[k])
{setup}
from sphm_jax.training import xla_cpu
from tests.training.test_xla_cpu import fan_grad_hlo
text = fan_grad_hlo()
print(json.dumps({{"imported": len(names), "changed": changed,
                  "kinds": xla_cpu.ynn_fusion_kinds(text),
                  "plain_convs": text.count("convolution("),
                  "xla_flags": os.environ.get("XLA_FLAGS", "")}}))
"""


def probe(env_extra, setup="from sphm_jax.training import xla_cpu; xla_cpu.apply()"):
    # The suite's -O0 (LLVM only: the same fusions, compiled faster) and nothing else.
    env = {**os.environ, "XLA_FLAGS": TEST_XLA_FLAGS}
    env.update(env_extra, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@functools.cache  # one compilation for the tests that read it
def fan_grad_hlo():
    """The compiled HLO text of a FAN's gradient (width 64: YNNPACK takes convolutions this big)."""
    model = FAN(num_stacks=1, num_landmarks=5, width=64, depth=1)
    images = jnp.zeros((4, 64, 64, 3))
    variables = jax.jit(model.init)(jax.random.key(0), images)

    def loss(params):
        out, _ = model.apply(
            {**variables, "params": params}, images, train=True, mutable=["batch_stats"]
        )
        return jnp.sum(out[0] ** 2)

    return jax.jit(jax.grad(loss)).lower(variables["params"]).compile().as_text()


def test_with_defaults_adds_the_project_flags_and_keeps_the_users():
    assert xla_cpu.with_defaults(None) == f"{xla_cpu.YNN_FUSION_TYPE}=-INDIVIDUAL_CONVOLUTION"
    mine = "--xla_force_host_platform_device_count=4"
    assert xla_cpu.with_defaults(mine).split() == [mine, *xla_cpu.with_defaults(None).split()]
    theirs = f"{xla_cpu.YNN_FUSION_TYPE}=+INDIVIDUAL_CONVOLUTION {mine}"
    assert xla_cpu.with_defaults(theirs) == theirs


def test_the_test_process_runs_convolutions_on_eigen_and_reductions_on_ynnpack():
    # conftest calls xla_cpu.apply() before any computation, as every command does.
    assert "-INDIVIDUAL_CONVOLUTION" in os.environ["XLA_FLAGS"]
    text = fan_grad_hlo()
    kinds = xla_cpu.ynn_fusion_kinds(text)
    assert "convolution" not in kinds and text.count("convolution(") > 0
    assert kinds.get("reduce", 0) > 0


def test_importing_every_module_changes_nothing_and_apply_chooses_the_path():
    ours = probe({})
    assert ours["imported"] > 40 and ours["changed"] == []
    # The backend had not started on import: the flags set after it take effect.
    assert "convolution" not in ours["kinds"] and ours["plain_convs"] > 0
    assert ours["kinds"].get("reduce", 0) > 0
    assert ours["xla_flags"] == xla_cpu.with_defaults(TEST_XLA_FLAGS)
    # The user's own choice (here: jaxlib's default, convolutions on YNNPACK) is kept.
    jaxlib_default = f"{xla_cpu.YNN_FUSION_TYPE}=+INDIVIDUAL_CONVOLUTION"
    theirs = probe({"XLA_FLAGS": f"{TEST_XLA_FLAGS} {jaxlib_default}"})
    assert theirs["kinds"].get("convolution", 0) > 0


def test_without_apply_the_import_leaves_jaxlibs_default_path():
    out = probe({}, setup="pass")
    assert out["changed"] == [] and out["xla_flags"] == TEST_XLA_FLAGS
    assert out["kinds"].get("convolution", 0) > 0


def benchmark_eval(xla_flags):
    """The record of `python -m sphm_jax.benchmark --what eval` on a FAN wide enough for YNNPACK."""
    out = subprocess.run(
        [sys.executable, "-m", "sphm_jax.benchmark", "--config", "configs/tiny.py"]
        + ["--what", "eval", "--repeats", "1", "--config.model.width=64"],
        cwd=ROOT,
        env={**os.environ, "XLA_FLAGS": xla_flags, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[0])


def test_a_command_chooses_the_path_before_jax_starts_and_the_users_flag_wins():
    ours = benchmark_eval(TEST_XLA_FLAGS)
    assert ours["xla_flags"] == xla_cpu.with_defaults(TEST_XLA_FLAGS)
    assert "convolution" not in ours["ynn_fusions"]
    jaxlib_default = f"{xla_cpu.YNN_FUSION_TYPE}=+INDIVIDUAL_CONVOLUTION"
    theirs = benchmark_eval(f"{TEST_XLA_FLAGS} {jaxlib_default}")
    assert theirs["ynn_fusions"].get("convolution", 0) > 0


def test_apply_returns_the_flags_it_put_in_the_environment():
    environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    assert xla_cpu.apply(environ) == environ["XLA_FLAGS"]
    assert environ["XLA_FLAGS"] == xla_cpu.with_defaults("--xla_force_host_platform_device_count=2")
    assert xla_cpu.apply({}) == xla_cpu.with_defaults(None)


def test_cpu_model_names_the_vector_isa():
    assert xla_cpu.cpu_model().endswith(("(AVX-512)", "(AVX2)", "(no AVX2)"))


def test_ynn_fusion_kinds_reads_each_kind():
    text = fan_grad_hlo()
    counts = xla_cpu.ynn_fusion_kinds(text)
    assert sum(counts.values()) == text.count('"kind":"__ynn_fusion"')
    assert counts and set(counts) <= {"convolution", "dot", "reduce", "eltwise"}
