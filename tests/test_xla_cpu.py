"""Tests for sphm_jax.xla_cpu: the CPU paths in effect, read from the compiled HLO."""

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from sphm_jax import xla_cpu
from sphm_jax.models import FAN
from tests.conftest import ROOT, TEST_XLA_FLAGS

# fan_grad_hlo below, in a process of its own whose first imports are {imports}.
PROBE = """
import json, os
{imports}
from sphm_jax import xla_cpu
from tests.test_xla_cpu import fan_grad_hlo
text = fan_grad_hlo()
print(json.dumps({{"kinds": xla_cpu.ynn_fusion_kinds(text),
                  "plain_convs": text.count("convolution("),
                  "xla_flags": os.environ.get("XLA_FLAGS", "")}}))
"""


def probe(env_extra, imports="import sphm_jax"):
    # The suite's -O0 (LLVM only: the same fusions, compiled faster) and nothing else.
    env = {**os.environ, "XLA_FLAGS": TEST_XLA_FLAGS}
    env.update(env_extra, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(imports=imports)],
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
    # conftest imports sphm_jax before any computation, as every entry point does.
    assert "-INDIVIDUAL_CONVOLUTION" in os.environ["XLA_FLAGS"]
    text = fan_grad_hlo()
    kinds = xla_cpu.ynn_fusion_kinds(text)
    assert "convolution" not in kinds and text.count("convolution(") > 0
    assert kinds.get("reduce", 0) > 0


def test_importing_sphm_jax_chooses_the_path_and_the_users_flag_wins():
    ours = probe({})
    assert "convolution" not in ours["kinds"] and ours["plain_convs"] > 0
    assert ours["kinds"].get("reduce", 0) > 0
    assert ours["xla_flags"] == xla_cpu.with_defaults(TEST_XLA_FLAGS)
    # The user's own choice (here: jaxlib's default, convolutions on YNNPACK) is kept.
    jaxlib_default = f"{xla_cpu.YNN_FUSION_TYPE}=+INDIVIDUAL_CONVOLUTION"
    theirs = probe({"XLA_FLAGS": f"{TEST_XLA_FLAGS} {jaxlib_default}"})
    assert theirs["kinds"].get("convolution", 0) > 0


def test_importing_after_the_backend_started_warns_and_changes_nothing():
    out = probe({}, imports="import jax; jax.devices()")
    # Without sphm_jax's flags the convolutions stay on YNNPACK (jaxlib's default).
    assert out["kinds"].get("convolution", 0) > 0
    with pytest.warns(UserWarning, match="after JAX's backend started"):
        environ = {}
        assert xla_cpu.apply(environ) is False and environ == {}


def test_cpu_model_names_the_vector_isa():
    assert xla_cpu.cpu_model().endswith(("(AVX-512)", "(AVX2)", "(no AVX2)"))


def test_ynn_fusion_kinds_reads_each_kind():
    text = fan_grad_hlo()
    counts = xla_cpu.ynn_fusion_kinds(text)
    assert sum(counts.values()) == text.count('"kind":"__ynn_fusion"')
    assert counts and set(counts) <= {"convolution", "dot", "reduce", "eltwise"}
