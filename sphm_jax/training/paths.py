"""Workdir, checkpoint and output paths, local or remote (gs://), all through etils.epath.

A local path is made absolute (orbax needs it) against the current directory; a remote one
(a URI such as gs://bucket/run) is kept as it is, once its clients are known to be there:
epath reaches it through tf.io.gfile, as tf.summary does, and orbax's checkpoints on gs://
also need google-cloud-storage.
"""

from __future__ import annotations

import importlib.util
import os

from etils import epath

# scheme -> (module, pip package) that orbax needs besides TensorFlow's filesystem.
_ORBAX_CLIENTS = {"gs": ("google.cloud.storage", "google-cloud-storage")}


def is_remote(p) -> bool:
    return "://" in os.fspath(p)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def check_remote(p) -> None:
    """Raises a ValueError naming `p` if this installation cannot read and write it."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    scheme = os.fspath(p).split("://", 1)[0]
    schemes = [s for s in tf.io.gfile.get_registered_schemes() if s not in ("", "file", "ram")]
    if scheme not in schemes:
        raise ValueError(
            f"{p}: TensorFlow's filesystem (TensorBoard, epath) has no {scheme}://; "
            f"remote workdirs can be {', '.join(f'{s}://' for s in schemes) or 'none'}"
        )
    module, package = _ORBAX_CLIENTS.get(scheme, (None, None))
    if module and not _installed(module):
        raise ValueError(
            f"{p}: orbax checkpoints on {scheme}:// need {package}: pip install 'sphm_jax[gcs]'"
        )


def path(p) -> epath.Path:
    """`p` as an epath.Path: absolute if local, checked (check_remote) if remote."""
    if is_remote(p):
        check_remote(p)
        return epath.Path(p)
    return epath.Path(p).resolve()
