"""The --config flag of every command: a config file's path, or the name of a shipped config.

The configs ship inside the package (sphm_jax/configs, the repository's configs/), so a command
finds them from any directory after `pip install .`. A value resolves to, in order:

  1. the file it names, if it exists (relative to the current directory, or absolute);
  2. the shipped config NAME, if the value is `configs/NAME.py`, `sphm_jax/configs/NAME.py`,
     `NAME.py` or `NAME` (so the README's `--config configs/synthetic.py` works anywhere);

and anything else is a flag error naming the value. As with ml_collections, `:ARG` after the
path is passed to get_config (`--config configs/ablation.py:hm,wflw`).
"""

from __future__ import annotations

import os
import posixpath

from absl import flags
from ml_collections import config_flags

from sphm_jax import configs

SHIPPED_DIR = os.path.dirname(os.path.abspath(configs.__file__))
# The folders a shipped config may be named under ("": a bare NAME or NAME.py).
SHIPPED_PREFIXES = ("", "configs", "sphm_jax/configs")


def shipped() -> list[str]:
    """Names of the shipped configs (the files of sphm_jax/configs)."""
    return sorted(
        name[:-3]
        for name in os.listdir(SHIPPED_DIR)
        if name.endswith(".py") and not name.startswith("_")
    )


def resolve(value: str) -> str:
    """The `path[:arg]` ml_collections loads for a --config value; ValueError if none matches."""
    path, colon, arg = value.partition(":")
    if os.path.isfile(path):
        return value
    folder, name = posixpath.split(posixpath.normpath(path.replace(os.sep, "/")))
    name = name.removesuffix(".py")
    if folder in SHIPPED_PREFIXES and name in shipped():
        return os.path.join(SHIPPED_DIR, f"{name}.py") + colon + arg
    raise ValueError(
        f"no config file {path!r} (in {os.getcwd()}) and no shipped config of that name; "
        f"name a file, or a shipped config as configs/NAME.py or NAME, NAME one of: "
        f"{', '.join(shipped())}"
    )


class _Resolving(flags.ArgumentParser):
    """ml_collections' config file parser, given the resolved path."""

    def __init__(self, parser):
        self._parser = parser

    def parse(self, argument):
        return self._parser.parse(resolve(argument))

    def flag_type(self):
        return self._parser.flag_type()


def DEFINE_config_file(name, default=None, help_string="", lock_config=True, **kwargs):
    """ml_collections' DEFINE_config_file whose value may also name a shipped config."""
    default = None if default is None else resolve(default)
    holder = config_flags.DEFINE_config_file(
        name, default, help_string, lock_config=lock_config, **kwargs
    )
    flag = kwargs.get("flag_values", flags.FLAGS)[name]
    flag.parser = _Resolving(flag.parser)
    return holder
