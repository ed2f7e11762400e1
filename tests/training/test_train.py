"""Tests for sphm_jax.training.train: real steps on synthetic_faces, resume, multi-device and multi-host equivalence."""

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest

from sphm_jax.data import input_pipeline
from sphm_jax.models import FAN, abstract_variables
from sphm_jax.training import checkpoints, preemption, reporting, train
from tests.helpers import (
    RELIABILITY_OVERRIDES,
    ROOT,
    TEST_XLA_FLAGS,
    assert_same_run,
    cli_args,
    logged_losses,
    logged_steps,
    run_python,
    tiny_config,
)


@pytest.fixture(scope="module")
def data_dir(tiny_data_dir):
    return tiny_data_dir  # synthetic_faces/tiny, built once per session (tests/conftest.py)


def test_real_steps_on_synthetic_faces_give_a_finite_falling_loss(data_dir):
    config = tiny_config(data_dir, num_train_steps=1000)  # keeps the lr drops out of these steps
    builder = input_pipeline.load_builder(config.dataset, config)
    model = train.create_model(config, 68)
    state = train.create_train_state(jax.random.key(0), config, model, 10)
    batch = next(
        input_pipeline.train_batches(builder, "train", global_batch_size=8, image_size=64, seed=0)
    )
    step = jax.jit(
        functools.partial(train.train_step, cfg=train.StepConfig.from_config(config, 68))
    )
    history = []
    for _ in range(25):
        state, metrics = step(state, {k: batch[k] for k in train.TRAIN_KEYS})
        history.append(float(metrics["loss"]))
    assert np.all(np.isfinite(history))
    assert np.mean(history[-5:]) < 0.7 * np.mean(history[:5])


def test_train_and_evaluate_writes_checkpoints_metrics_and_eval_results(data_dir, tmp_path):
    results = train.train_and_evaluate(tiny_config(data_dir), str(tmp_path))
    assert set(results) == {"test"} and np.isfinite(results["test"]["nme"])
    assert results["test"]["num_examples"] > 0
    saved = json.loads((tmp_path / "eval_results.json").read_text())
    assert saved["step"] == 6 and saved["results"]["test"]["nme"] == results["test"]["nme"]
    assert len(logged_losses(tmp_path)) == 6
    assert checkpoints.latest_step(tmp_path / "checkpoints") == 6
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))
    model, variables = checkpoints.load_model(tmp_path / "checkpoints")
    assert model.config()["width"] == 16 and "batch_stats" in variables


def test_resume_continues_loss_for_loss(data_dir, tmp_path):
    config = tiny_config(data_dir)
    train.train_and_evaluate(config, str(tmp_path / "straight"))
    assert train.train_and_evaluate(config, str(tmp_path / "resumed"), stop_at_step=3) == {}
    assert len(logged_losses(tmp_path / "resumed")) == 3
    train.train_and_evaluate(config, str(tmp_path / "resumed"))
    np.testing.assert_array_equal(
        logged_losses(tmp_path / "resumed"), logged_losses(tmp_path / "straight")
    )
    _, a = checkpoints.restore(tmp_path / "straight" / "checkpoints")
    _, b = checkpoints.restore(tmp_path / "resumed" / "checkpoints")
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def param_rel_diff(a_dir, b_dir) -> float:
    """|a - b| / |b| over every parameter (one vector) of two workdirs' final checkpoints."""
    _, a = checkpoints.load_model(a_dir / "checkpoints")  # onto this process's device
    _, b = checkpoints.load_model(b_dir / "checkpoints")
    pairs = [
        (np.asarray(x, np.float64), np.asarray(y, np.float64))
        for x, y in zip(*(jax.tree_util.tree_leaves(v["params"]) for v in (a, b)))
    ]
    diff = np.sqrt(sum(np.sum((x - y) ** 2) for x, y in pairs))
    return float(diff / np.sqrt(sum(np.sum(y**2) for _, y in pairs)))


def start_two_processes(data_dir, workdir, overrides, port, logs):
    """`main` as processes 0 and 1 of a run over 127.0.0.1, two CPU devices each.

    Their logs go to files in `logs`: a pipe that nobody drains while the other process is
    waited for fills up and stops its writer, and with it the collective both are in.
    """
    env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count=2 {TEST_XLA_FLAGS}"}
    env = {**os.environ, **env, "PYTHONPATH": ROOT}
    logs.mkdir(exist_ok=True)
    procs = []
    for i in range(2):
        with open(logs / f"process{i}.log", "w") as log:
            args = [
                *cli_args(data_dir, workdir, overrides),
                f"--coordinator_address=127.0.0.1:{port}",
            ]
            args += ["--num_processes=2", f"--process_id={i}"]
            procs.append(
                subprocess.Popen(
                    [sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
    return procs


def wait_for(procs, logs, timeout):
    """The processes' logs once both have exited; past `timeout` s, both killed and a failure."""
    deadline = time.time() + timeout
    while any(p.poll() is None for p in procs) and time.time() < deadline:
        time.sleep(0.05)
    outs = [(logs / f"process{i}.log").read_text() for i in range(len(procs))]
    if any(p.poll() is None for p in procs):
        for p in procs:
            p.kill()
        pytest.fail(f"still running after {timeout} s:\n" + "\n".join(o[-3000:] for o in outs))
    return outs


@pytest.mark.multiprocess
@pytest.mark.xdist_group("uninterrupted")
def test_two_processes_with_two_devices_each_equal_one_process_with_one_device(
    data_dir, uninterrupted, tmp_path
):
    # Two processes with two devices each: the batch split over local devices and over hosts,
    # against the suite's one-process run of the same config (SGD: losses and parameters, one
    # vector, agree to 1e-5; see RELIABILITY_OVERRIDES).
    overrides = RELIABILITY_OVERRIDES
    multi = tmp_path / "multi"
    # Preempted: only process 1 gets the SIGTERM; JAX's service stops both at one step.
    logs = tmp_path / "preempted"
    procs = start_two_processes(data_dir, multi, overrides, free_port(), logs)
    deadline = time.time() + 240
    while not ((multi / "metrics.jsonl").exists() and (multi / "metrics.jsonl").read_text()):
        if time.time() > deadline or procs[0].poll() is not None:
            outs = wait_for(procs, logs, timeout=0)  # kills them if they still run
            pytest.fail("no step logged:\n" + "\n".join(o[-3000:] for o in outs))
        time.sleep(0.02)
    procs[1].send_signal(signal.SIGTERM)
    outs = wait_for(procs, logs, timeout=240)
    stopped = checkpoints.latest_step(multi / "checkpoints")
    for p, err in zip(procs, outs):
        assert p.returncode == preemption.EXIT_STATUS, err[-3000:]
        assert f"stopped at step {stopped}" in err
    assert 1 <= stopped < overrides["num_train_steps"]
    assert "process 1 of 2, 2 local / 4 global devices" in outs[1]
    procs = start_two_processes(data_dir, multi, overrides, free_port(), tmp_path / "rerun")
    outs = wait_for(procs, tmp_path / "rerun", timeout=300)
    for p, err in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert f"resumed from step {stopped}" in err
    np.testing.assert_allclose(logged_losses(multi), logged_losses(uninterrupted), rtol=1e-5)
    assert param_rel_diff(multi, uninterrupted) < 1e-5
    multi_res = json.loads((multi / "eval_results.json").read_text())["results"]
    single_res = json.loads((uninterrupted / "eval_results.json").read_text())["results"]
    assert multi_res["test"]["num_examples"] == single_res["test"]["num_examples"]
    assert multi_res["test"]["nme"] == pytest.approx(single_res["test"]["nme"], rel=1e-4)


# --- reliability: preemption, killed checkpoint writes, non-finite steps, other model sizes ---


# Runs main, SIGKILLed inside orbax while it writes the second checkpoint (step 8): after the
# train_state item is finalised, before the variables item and the step folder are.
KILLED_IN_SAVE = """
import os, signal, sys
from absl import app
from orbax.checkpoint._src.path import atomicity
from sphm_jax import main
finalize = atomicity.AtomicRenameTemporaryPath.finalize
calls = []
async def killing_finalize(self, *args, **kwargs):
    calls.append(self.get())
    if len(calls) == 4 + 3:  # four finalisations per checkpoint; the 3rd of the 2nd
        os.kill(os.getpid(), signal.SIGKILL)
    return await finalize(self, *args, **kwargs)
atomicity.AtomicRenameTemporaryPath.finalize = killing_finalize
sys.argv = ["main", *sys.argv[1:]]
app.run(main.main)
"""


@pytest.mark.xdist_group("uninterrupted")
def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one_and_the_rerun_resumes(
    data_dir, uninterrupted, tmp_path
):
    killed = run_python(["-c", KILLED_IN_SAVE, *cli_args(data_dir, tmp_path)[2:]], {})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    names = os.listdir(tmp_path / "checkpoints")
    assert "4" in names and "8" not in names and any(".orbax-checkpoint-tmp" in n for n in names)
    assert checkpoints.latest_step(tmp_path / "checkpoints") == 4
    checkpoints.restore(tmp_path / "checkpoints")  # the previous checkpoint is whole
    assert logged_steps(tmp_path) == list(range(1, 9))  # step 8 was logged, not saved
    rerun = run_python(cli_args(data_dir, tmp_path), {})
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resumed from step 4" in rerun.stderr
    assert_same_run(tmp_path, uninterrupted)  # steps 5-8 logged once, as in one run


def test_a_step_with_non_finite_variables_is_not_applied_and_is_named(data_dir):
    config = tiny_config(data_dir)
    state = train.create_train_state(jax.random.key(0), config, train.create_model(config, 68), 10)
    tx = optax.sgd(float("nan"))  # finite loss and gradients, NaN update
    state = state.replace(tx=tx, opt_state=tx.init(state.params))
    builder = input_pipeline.load_builder(config.dataset, config)
    batch = next(
        input_pipeline.train_batches(builder, "train", global_batch_size=8, image_size=64, seed=0)
    )
    step = jax.jit(
        functools.partial(train.train_step, cfg=train.StepConfig.from_config(config, 68))
    )
    new, step_metrics = step(state, {k: batch[k] for k in train.TRAIN_KEYS})
    jax.tree_util.tree_map(np.testing.assert_array_equal, new.params, state.params)
    assert int(new.step) == int(state.step)
    guard = reporting.NonFiniteGuard()
    guard.note(7, step_metrics)
    with pytest.raises(
        FloatingPointError,
        match=r"step 7: the update made these variables "
        r"non-finite: params/bn1/bias, params/bn1/scale, .* and \d+ more",
    ):
        guard.check(train.variables_of(new))


def test_a_diverging_run_stops_naming_the_step_and_never_saves_non_finite_variables(
    data_dir, tmp_path
):
    # lr 1e30: step 1 is finite but makes the weights ~1e30, so step 2's activations overflow.
    config = tiny_config(data_dir, learning_rate=1e30, checkpoint_every_steps=1)
    with pytest.raises(FloatingPointError, match=r"training stopped at step 2: the loss is nan"):
        train.train_and_evaluate(config, str(tmp_path))
    ckpt_dir = tmp_path / "checkpoints"
    assert checkpoints.latest_step(ckpt_dir) == 1
    variables = checkpoints.restore(ckpt_dir)[1]
    assert checkpoints.nonfinite_leaves(variables) == []
    assert not (tmp_path / "eval_results.json").exists()


def test_resuming_a_workdir_of_another_model_size_says_so(data_dir, tmp_path):
    other = FAN(num_stacks=1, num_landmarks=68, width=32, depth=2)
    variables = jax.tree_util.tree_map(
        lambda s: np.zeros(s.shape, s.dtype), abstract_variables(other)
    )
    checkpoints.save(tmp_path / "checkpoints", 3, variables, other.config())
    expected = (
        r"checkpoints: checkpoint holds FAN\(\{'num_stacks': 1, 'num_landmarks': 68, "
        r"'width': 32, 'depth': 2\}\), expected FAN\(\{.*'width': 16.*\}\)"
    )
    with pytest.raises(ValueError, match=expected):
        train.train_and_evaluate(tiny_config(data_dir), str(tmp_path))
