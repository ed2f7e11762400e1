"""What a training run reports while it runs: metrics.jsonl, TensorBoard, progress, divergence.

Process 0 writes; the others stay quiet. A resumed run first forgets what was
logged after its start step, so each step is logged once.
"""

from __future__ import annotations

import functools
import json
import time

import jax
import jax.numpy as jnp
import tensorflow as tf
from absl import logging

from sphm_jax.training import checkpoints, paths


def all_finite(finite: dict) -> jax.Array:
    """Whether a step's finite_checks (loss, grad_norm, variables per leaf) all hold."""
    return finite["loss"] & finite["grad_norm"] & jnp.all(finite["variables"])


def note_first_nonfinite(record: dict, step_metrics: dict, step) -> dict:
    """record (step 0 = none yet, loss, grad_norm, finite) keeps the first non-finite step's."""
    first = (record["step"] == 0) & ~all_finite(step_metrics["finite"])
    new = {"step": jnp.asarray(step, jnp.int32), **step_metrics}
    return jax.tree_util.tree_map(functools.partial(jnp.where, first), new, record)


def describe_nonfinite(record: dict, variable_names: list[str]) -> str | None:
    """The error message for a host copy of a record, or None if every step was finite."""
    if int(record["step"]) == 0:
        return None
    finite, quantities = record["finite"], []
    if not finite["loss"]:
        quantities.append(f"the loss is {float(record['loss'])}")
    if not finite["grad_norm"]:
        quantities.append(f"the gradient norm is {float(record['grad_norm'])}")
    bad = [name for name, ok in zip(variable_names, finite["variables"]) if not ok]
    if bad:
        more = f" and {len(bad) - 8} more" if len(bad) > 8 else ""
        quantities.append(f"the update made these variables non-finite: {', '.join(bad[:8])}{more}")
    return (
        f"training stopped at step {int(record['step'])}: {'; '.join(quantities)} "
        "(that step was not applied; try a lower learning_rate or check the data)"
    )


def _logged_step(line: str) -> int | None:
    """The step of a metrics.jsonl line; None for a line cut short by a killed process."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _drop_events_after(path, step: int) -> None:
    """Rewrites a TensorBoard event file (an epath.Path) without its events after `step`."""
    records, kept = 0, []
    try:
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            records += 1
            if tf.compat.v1.Event.FromString(record).step <= step:
                kept.append(record)
    except tf.errors.DataLossError:
        records += 1  # a record cut short by a killed process: dropped with the rest
    if len(kept) == records:
        return
    # No "tfevents" in the temporary name: TensorBoard would read a leftover one.
    temporary = path.with_name(".rewriting-events")
    with tf.io.TFRecordWriter(str(temporary)) as writer:
        for record in kept:
            writer.write(record)
    temporary.replace(path)  # kill-safe
    logging.info("%s: dropped %d event(s) after step %d", path, records - len(kept), step)


class NonFiniteGuard:
    """Remembers on the device the first non-finite step; check() fetches it and raises."""

    def __init__(self):
        self.record = None
        self._note = jax.jit(note_first_nonfinite)

    def note(self, step: int, step_metrics: dict) -> None:
        if self.record is None:
            zeros = jax.tree_util.tree_map(jnp.zeros_like, step_metrics)
            self.record = {"step": jnp.zeros((), jnp.int32), **zeros}
        self.record = self._note(self.record, step_metrics, step)

    def check(self, variables) -> None:
        """Raises FloatingPointError naming the first non-finite step noted, if any."""
        names = checkpoints.leaf_names(variables)
        message = self.record and describe_nonfinite(jax.device_get(self.record), names)
        if message:
            raise FloatingPointError(message)


class Reporter:
    """metrics.jsonl, TensorBoard events and a progress line; process 0 writes, the others stay quiet."""

    def __init__(self, workdir: str, total_steps: int, batch_size: int):
        self.active = jax.process_index() == 0
        self.total, self.batch_size = total_steps, batch_size
        self.workdir = paths.path(workdir)
        self.jsonl = self.workdir / "metrics.jsonl"
        self.writer = tf.summary.create_file_writer(str(self.workdir)) if self.active else None
        self.last = (None, None)

    def forget_after(self, step: int) -> None:
        """Drops what was logged for steps after `step` (metrics.jsonl lines, TensorBoard events):
        a run resumed from `step` logs them again."""
        if not self.active:
            return
        for events in self.workdir.glob("events.out.tfevents.*"):
            _drop_events_after(events, step)
        if not self.jsonl.exists():
            return
        lines = self.jsonl.read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if _logged_step(ln) is not None and _logged_step(ln) <= step]
        if len(kept) != len(lines):
            tmp = self.jsonl.with_name(self.jsonl.name + ".tmp")
            tmp.write_text("".join(kept))
            tmp.replace(self.jsonl)  # kill-safe
            logging.info(
                "metrics.jsonl: dropped %d line(s) after step %d", len(lines) - len(kept), step
            )

    def scalars(self, step: int, values: dict) -> None:
        if not self.active:
            return
        with self.jsonl.open("a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        with self.writer.as_default(step=step):
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    tf.summary.scalar(k, v)
        self.writer.flush()

    def progress(self, step: int, loss: float) -> dict:
        now = time.time()
        last_step, last_time = self.last
        self.last = (step, now)
        if last_step is None or step == last_step:
            return {}
        rate = (step - last_step) / (now - last_time)
        eta = (self.total - step) / rate
        if self.active:
            logging.info(
                "step %d/%d  loss %.6f  %.1f images/s  ETA %s",
                step,
                self.total,
                loss,
                rate * self.batch_size,
                time.strftime("%H:%M:%S", time.gmtime(eta)),
            )
        return {"images_per_s": rate * self.batch_size}
