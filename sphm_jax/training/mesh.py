"""The data-parallel mesh, and moving batches and results between hosts and devices.

One 1-D "data" mesh serves training, evaluation, prediction and the benchmark:
batches are split along it, variables are replicated over it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


class DataParallel(NamedTuple):
    mesh: jax.sharding.Mesh
    data: NamedSharding  # split along the batch axis
    replicated: NamedSharding


def data_parallel(devices) -> DataParallel:
    """The mesh of `devices` and its two shardings; Auto axes let XLA place the collectives."""
    mesh = jax.make_mesh(
        (len(devices),), ("data",), devices=devices, axis_types=(jax.sharding.AxisType.Auto,)
    )
    return DataParallel(mesh, NamedSharding(mesh, P("data")), NamedSharding(mesh, P()))


def to_global(batch, keys, sharding):
    """This process's numpy batch -> global jax arrays split along the mesh's data axis."""
    return {k: jax.make_array_from_process_local_data(sharding, batch[k]) for k in keys}


def to_local(array, mesh) -> np.ndarray:
    """This process's rows of a global array split along "data", as numpy."""
    return np.asarray(multihost_utils.global_array_to_host_local_array(array, mesh, P("data")))


def gather(values: np.ndarray) -> np.ndarray:
    """Concatenate a per-process numpy array over processes (a no-op on one process)."""
    if jax.process_count() == 1:
        return values
    return np.asarray(multihost_utils.process_allgather(values, tiled=True))


def gather_strings(values, width: int = 64) -> list[str]:
    """gather() of strings, as fixed-width bytes (cut at `width`)."""
    raw = np.zeros((len(values), width), np.uint8)
    for i, v in enumerate(values):
        b = v if isinstance(v, bytes) else str(v).encode()
        raw[i, : len(b[:width])] = np.frombuffer(b[:width], np.uint8)
    return [bytes(r).rstrip(b"\0").decode() for r in gather(raw)]
