"""Preemption: a SIGTERM checkpoints at a step every process agrees on, then the process exits.

One process: the SIGTERM handler notes the signal. Before the first step (dataset
build, crops, compilation) there is nothing to save, so it raises Preempted at once;
once training runs, the loop reads the note after each step (and evaluation between
batches), saves where a checkpoint is due and raises Preempted. Python runs the handler
only when the main thread is back from C++ code (a compilation, a wait), so a watcher
thread also hears the signal, through signal.set_wakeup_fd, and ends the process if it
is still running SETUP_GRACE_S (before training) or GRACE_S (after) later: orbax's
atomic writes keep the previous checkpoint restorable, so a rerun still ends as an
uninterrupted run would.

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
SETUP_GRACE_S = 10.0  # before the first step: time to unwind (a dataset build's workers)
BEFORE_TRAINING = "before the first step (nothing to save)"
SIGTERM_BYTE = bytes([signal.SIGTERM])  # what Python writes to the wakeup fd for a SIGTERM


class Preempted(BaseException):
    """Training stopped on SIGTERM (a BaseException: no library's `except Exception` eats it)."""


class Stop:
    """Asks, after each step, whether a SIGTERM has come: stop(step) -> bool, on every process."""

    def __init__(self):
        self.received = threading.Event()
        self.done = threading.Event()  # the context has ended: the watchdog stands down
        self.training = False  # set when the loop starts; before, a SIGTERM stops at once
        self.raised = False
        self.lock = threading.Lock()  # the watcher's interrupt against the handler's removal

    def __call__(self, step: int) -> bool:
        if jax.process_count() > 1:
            return multihost_utils.reached_preemption_sync_point(step)
        return self.received.is_set()

    def check(self, where: str) -> None:
        """Raises Preempted if a SIGTERM has come (single process: the others must agree first)."""
        if jax.process_count() == 1 and self.received.is_set():
            raise Preempted(f"stopped {where}")

    def handle(self, signum, frame) -> None:
        """Python's handler: runs in the main thread once it is back from C++ code."""
        del signum, frame
        self.received.set()
        if not (self.training or self.raised):  # once: a second raise would cut the unwinding
            self.raised = True
            raise Preempted(f"stopped {BEFORE_TRAINING}")  # a gc callback may swallow it
        logging.warning("SIGTERM: stopping after this step and its checkpoint, or mid-evaluation")

    def watch(self, wakeup_fd: int) -> None:
        """A thread's: hears SIGTERM at once, even while the main thread compiles or waits."""
        try:
            while SIGTERM_BYTE not in (read := os.read(wakeup_fd, 64)):
                if not read:
                    return  # the context ended: no SIGTERM came
            self.received.set()
            with self.lock:  # while the handler is still ours: else SIGTERM's default kills
                if not (self.training or self.raised or self.done.is_set()):
                    # The kernel may have handed the signal to another thread, leaving the main
                    # one asleep in a wait (a worker pool's results): this one interrupts it.
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
            # Before training the main thread has nothing to save: it need only reach Python.
            grace = GRACE_S if self.training else SETUP_GRACE_S
            if not self.done.wait(grace):
                during = "" if self.training else f"stopped {BEFORE_TRAINING}: "
                exit_now(f"{during}still running {grace:.0f} s after SIGTERM")
        finally:
            os.close(wakeup_fd)


@contextlib.contextmanager
def sigterm_stops_training() -> Iterator[Stop]:
    """Yields a Stop; a single process in its main thread gets a SIGTERM handler meanwhile."""
    stop = Stop()
    if jax.process_count() > 1 or threading.current_thread() is not threading.main_thread():
        yield stop  # JAX's service owns SIGTERM; or, off the main thread, no handler can be set
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = signal.signal(signal.SIGTERM, stop.handle)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=stop.watch, args=(read_fd,), daemon=True).start()
    try:
        yield stop
    finally:
        with stop.lock:
            stop.done.set()
            signal.set_wakeup_fd(previous_fd)
            signal.signal(signal.SIGTERM, previous)
        os.close(write_fd)  # the watcher reads an end of file (or sees done) and returns


def exit_now(why: str) -> None:
    """Ends the process with EXIT_STATUS without waiting for threads (tf.data, compilation)."""
    logging.warning("exiting with status %d: %s; rerun with the same workdir", EXIT_STATUS, why)
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_STATUS)  # pylint: disable=protected-access
