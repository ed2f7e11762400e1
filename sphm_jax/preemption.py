"""Preemption: a SIGTERM asks training to checkpoint at a step every process agrees on, then stop.

One process: a SIGTERM handler sets a flag, read after each step. Several
processes: JAX's preemption service (started by jax.distributed.initialize)
hears the SIGTERM of any process and picks one step at which all of them
stop, so they save the same checkpoint (multihost_utils.reached_preemption_sync_point).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

import jax
from absl import logging
from jax.experimental import multihost_utils


@contextlib.contextmanager
def sigterm_stops_training() -> Iterator[Callable[[int], bool]]:
    """Yields preempted(step) -> bool, to be called after every step on every process."""
    if jax.process_count() > 1:
        yield multihost_utils.reached_preemption_sync_point
        return
    if threading.current_thread() is not threading.main_thread():
        yield lambda step: False  # signal handlers can only be set from the main thread
        return
    received = threading.Event()

    def handler(signum, frame):
        logging.warning("SIGTERM: saving a checkpoint after this step, then stopping")
        received.set()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield lambda step: received.is_set()
    finally:
        signal.signal(signal.SIGTERM, previous)
