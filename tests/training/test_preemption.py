"""Tests for sphm_jax.training.preemption: a SIGTERM at any moment ends the run soon, saving what is due.

The other side of the promise (the rerun ends as an uninterrupted run would) is checked here
for the in-process moments and in tests/training/test_train.py for a real SIGTERM to `main`, one and
two processes.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from sphm_jax.data import input_pipeline
from sphm_jax.training import checkpoints, preemption, train
from tests.helpers import (
    RELIABILITY_OVERRIDES,
    ROOT,
    assert_same_run,
    tiny_config,
)

# The main job's model, batch, logging and checkpoint intervals (configs/synthetic.py).
MAIN_JOB = ["-m", "sphm_jax.main", "--config", "configs/synthetic.py"]
GRACE_S = 30  # what Kubernetes, GCE and Cloud TPU give a process between SIGTERM and SIGKILL


@pytest.fixture(scope="module")
def data_dir(tiny_data_dir):
    return tiny_data_dir


def sigterm_when(args, pattern, delay_s=0.0, timeout_s=300):
    """Runs python args; SIGTERM delay_s after a stderr line matches pattern.

    Returns (exit status, seconds from the SIGTERM to the exit, stderr).
    """
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines, seen = [], threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if re.search(pattern, line):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not seen.wait(timeout_s):
        proc.kill()
        pytest.fail(f"no line matched {pattern!r}:\n" + "".join(lines)[-3000:])
    time.sleep(delay_s)
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    status = proc.wait(timeout=timeout_s)
    exited = time.monotonic()
    reader.join(timeout=10)
    return status, exited - signalled, "".join(lines)


def test_sigterm_while_the_dataset_builds_exits_and_leaves_no_half_dataset(tmp_path):
    # The main job's dataset (5,000 training faces), rendered by worker processes.
    data_dir = tmp_path / "data"
    args = [*MAIN_JOB, f"--config.data_dir={data_dir}", f"--workdir={tmp_path / 'work'}"]
    status, seconds, err = sigterm_when(args, r"Generating dataset synthetic_faces", 2.0)
    assert status == preemption.EXIT_STATUS, err[-3000:]
    assert seconds < GRACE_S, err[-3000:]
    assert "stopped before the first step" in err
    assert not list(data_dir.rglob("dataset_info.json"))  # never prepared: a rerun builds it whole
    assert not (tmp_path / "work" / "checkpoints").exists()


def main_job_on_tiny_faces(data_dir, workdir):
    """The main job's command with the tiny split of its dataset (its crops are made in 1 s)."""
    return [
        *MAIN_JOB,
        "--config.dataset=synthetic_faces/tiny",
        f"--config.data_dir={data_dir}",
        f"--workdir={workdir}",
    ]


def test_sigterm_while_compiling_exits_without_waiting_for_the_compiler(data_dir, tmp_path):
    args = main_job_on_tiny_faces(data_dir, tmp_path)
    # Reusing the dataset: train_and_evaluate has begun (a SIGTERM before it kills at once).
    status, seconds, err = sigterm_when(args, r"Reusing dataset synthetic_faces", 0.5)
    assert status == preemption.EXIT_STATUS, err[-3000:]
    assert seconds < GRACE_S, err[-3000:]
    assert "stopped before the first step" in err
    assert "training from step" not in err
    assert checkpoints.latest_step(tmp_path / "checkpoints") is None


def test_sigterm_mid_training_at_the_main_jobs_sizes_saves_the_next_step_and_exits(
    data_dir, tmp_path
):
    # Logged every 100 steps: the loop must not queue steps ahead of the device meanwhile.
    args = main_job_on_tiny_faces(data_dir, tmp_path)
    status, seconds, err = sigterm_when(args, r"training from step 0 to 1200", 3.0)
    assert status == preemption.EXIT_STATUS, err[-3000:]
    assert seconds < GRACE_S, err[-3000:]
    stopped = checkpoints.latest_step(tmp_path / "checkpoints")
    assert stopped is not None and 1 <= stopped < 1200
    assert f"stopped at step {stopped}" in err
    assert not (tmp_path / "eval_results.json").exists()


@pytest.mark.xdist_group("uninterrupted")
def test_sigterm_at_a_checkpoint_then_in_the_final_evaluation_and_the_reruns_end_as_one_run(
    data_dir, uninterrupted, tmp_path, monkeypatch
):
    config = tiny_config(data_dir, **RELIABILITY_OVERRIDES)
    save = checkpoints.save

    def save_signalled(directory, step, *args, **kwargs):
        if step == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while the checkpoint is written
        return save(directory, step, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "save", save_signalled)
    with pytest.raises(preemption.Preempted, match="stopped at step 5"):
        train.train_and_evaluate(config, str(tmp_path))
    assert checkpoints.latest_step(tmp_path / "checkpoints") == 5
    monkeypatch.undo()

    batches = input_pipeline.eval_batches

    def batches_signalled(*args, **kwargs):
        iterator = batches(*args, **kwargs)
        yield next(iterator)
        os.kill(os.getpid(), signal.SIGTERM)  # after the first of the two test batches
        yield from iterator

    monkeypatch.setattr(input_pipeline, "eval_batches", batches_signalled)
    with pytest.raises(preemption.Preempted, match="stopped during evaluation"):
        train.train_and_evaluate(config, str(tmp_path))
    assert checkpoints.latest_step(tmp_path / "checkpoints") == 12
    assert not (tmp_path / "eval_results.json").exists()
    monkeypatch.undo()

    results = train.train_and_evaluate(config, str(tmp_path))  # evaluates only
    assert_same_run(tmp_path, uninterrupted)
    expected = json.loads((uninterrupted / "eval_results.json").read_text())["results"]
    assert results == expected
