"""Preemption: a SIGTERM checkpoints at a step every process agrees on, then the process exits.

One process: the SIGTERM handler notes the signal. Before the first step (dataset
build, crops, compilation) there is nothing to save, so it raises Preempted at once;
once training runs, the loop reads the note after each step (and evaluation between
batches), saves where a checkpoint is due and raises Preempted. A watchdog ends the
process GRACE_S after the signal whatever it is doing: orbax's atomic writes keep the
previous checkpoint restorable, so a rerun still ends as an uninterrupted run would.

Several processes: JAX's preemption service (started by jax.distributed.initialize)
owns SIGTERM, hears it on any process and picks one step at which all of them stop,
so they save the same checkpoint (multihost_utils.reached_preemption_sync_point).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

import jax
from absl import logging
from jax.experimental import multihost_utils

EXIT_STATUS = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM
GRACE_S = 25.0  # inside the 30 s that Kubernetes, GCE and Cloud TPU leave before SIGKILL


class Preempted(BaseException):
    """Training stopped on SIGTERM (a BaseException: no library's `except Exception` eats it)."""


class Stop:
    """Asks, after each step, whether a SIGTERM has come: stop(step) -> bool, on every process."""

    def __init__(self):
        self.received = threading.Event()
        self.watchdogs = []
        self.training = False  # set when the loop starts; before, a SIGTERM stops at once

    def __call__(self, step: int) -> bool:
        if jax.process_count() > 1:
            return multihost_utils.reached_preemption_sync_point(step)
        return self.received.is_set()

    def check(self, where: str) -> None:
        """Raises Preempted if a SIGTERM has come (single process: the others must agree first)."""
        if jax.process_count() == 1 and self.received.is_set():
            raise Preempted(f"stopped during {where}")

    def handle(self, signum, frame) -> None:
        del signum, frame
        self.received.set()
        watchdog = threading.Timer(GRACE_S, exit_now, kwargs={"why": "the grace period ended"})
        watchdog.daemon = True
        watchdog.start()
        self.watchdogs.append(watchdog)
        if not self.training:
            raise Preempted("stopped before the first step (nothing to save)")
        logging.warning("SIGTERM: stopping after this step and its checkpoint, or mid-evaluation")


@contextlib.contextmanager
def sigterm_stops_training() -> Iterator[Stop]:
    """Yields a Stop; a single process in its main thread gets a SIGTERM handler meanwhile."""
    stop = Stop()
    if jax.process_count() > 1 or threading.current_thread() is not threading.main_thread():
        yield stop  # JAX's service owns SIGTERM; or, off the main thread, no handler can be set
        return
    previous = signal.signal(signal.SIGTERM, stop.handle)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
        for watchdog in stop.watchdogs:  # stopped in time: the caller exits (main) or goes on
            watchdog.cancel()


def exit_now(why: str) -> None:
    """Ends the process with EXIT_STATUS without waiting for threads (tf.data, compilation)."""
    logging.warning("exiting with status %d: %s; rerun with the same workdir", EXIT_STATUS, why)
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_STATUS)  # pylint: disable=protected-access
