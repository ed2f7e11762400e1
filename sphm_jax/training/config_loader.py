"""A training config, loaded and checked: the --config flag of every command, and `validate`.

--config names a config file or a shipped config. The configs ship inside the package
(sphm_jax/training/configs, the repository's configs/), so a command finds them from any
directory after `pip install .`. A value resolves to, in order:

  1. the file it names, if it exists (relative to the current directory, or absolute);
  2. the shipped config NAME, if the value is `configs/NAME.py`, `sphm_jax/configs/NAME.py`,
     `sphm_jax/training/configs/NAME.py`, `NAME.py` or `NAME` (so the README's
     `--config configs/synthetic.py` works anywhere);

and anything else is a flag error naming the value. As with ml_collections, `:ARG` after the
path is passed to get_config (`--config configs/ablation.py:hm,wflw`). A config file is Python:
loading it runs it.

`validate` checks a config before anything is built or compiled, every problem on a line of
its own. Field names and types are those of configs/default.py's get_config(), which every
config overrides; the sizes must fit the FAN and the device count.
"""

from __future__ import annotations

import math
import os
import posixpath

import ml_collections
from absl import flags
from ml_collections import config_flags

from sphm_jax import heatmaps, metrics
from sphm_jax.models import hourglass
from sphm_jax.training import configs, optimizer
from sphm_jax.training.configs import default

SHIPPED_DIR = os.path.dirname(os.path.abspath(configs.__file__))
# The folders a shipped config may be named under ("": a bare NAME or NAME.py).
SHIPPED_PREFIXES = ("", "configs", "sphm_jax/configs", "sphm_jax/training/configs")


def shipped() -> list[str]:
    """Names of the shipped configs (the files of sphm_jax/training/configs)."""
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


DTYPES = ("float32", "bfloat16", "float16")
# Fields that must be > 0; "model.width" and "model.depth" are checked against the FAN below.
POSITIVE = (
    "batch_size",
    "num_epochs",
    "learning_rate",
    "log_every_steps",
    "eval_every_steps",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "image_size",
    "heatmap_size",
    "sigma",
    "temperature",
    "crop_scale",
    "model.num_stacks",
    "auc_threshold",
    "failure_threshold",
)


_DICTS = (ml_collections.ConfigDict, dict)


class ConfigError(ValueError):
    """A config that cannot train; the message lists every problem, one per line."""


def _type_name(value) -> str:
    return type(value).__name__


def _matches(value, reference, field_type) -> bool:
    """Whether `value` may replace the default `reference` (of declared type `field_type`)."""
    if value is None:
        return reference is None
    if field_type is bool or isinstance(value, bool):
        return field_type is bool and isinstance(value, bool)
    if field_type is float:
        return isinstance(value, (int, float))
    if field_type in (tuple, list):
        return isinstance(value, (tuple, list))
    return isinstance(value, field_type)


def _declared_type(config: ml_collections.ConfigDict, key: str):
    """The type of a default field; a FieldReference(None, field_type=str) declares str."""
    try:
        return config.get_type(key)
    except (AttributeError, KeyError):
        return type(config[key])


def type_problems(config, reference, prefix: str = "") -> list[str]:
    """Unknown fields and wrong types, compared with the default config `reference`."""
    problems = []
    for key in sorted(config.keys()):
        name = f"{prefix}{key}"
        if key not in reference:
            known = ", ".join(sorted(reference.keys()))
            problems.append(f"{name}: unknown field (fields here: {known})")
            continue
        value, ref = config[key], reference[key]
        if isinstance(ref, _DICTS):
            if not isinstance(value, _DICTS):
                problems.append(f"{name}: must be a ConfigDict, got {_type_name(value)} {value!r}")
            else:
                problems += type_problems(value, ref, f"{name}.")
            continue
        field_type = _declared_type(reference, key)
        if not _matches(value, ref, field_type):
            wanted = field_type.__name__ + (" or None" if ref is None else "")
            problems.append(f"{name}: must be {wanted}, got {_type_name(value)} {value!r}")
        elif isinstance(ref, (tuple, list)) and ref and value is not None:
            element = type(ref[0])
            bad = [v for v in value if not _matches(v, ref[0], element)]
            if bad:
                problems.append(f"{name}: elements must be {element.__name__}, got {list(value)!r}")
    return problems


def _get(config, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _range(config, name: str) -> list[str]:
    lo_hi = _get(config, name)
    if len(lo_hi) != 2 or not all(_number(v) for v in lo_hi) or not 0 < lo_hi[0] <= lo_hi[1]:
        return [f"{name}: must be (low, high) with 0 < low <= high, got {tuple(lo_hi)!r}"]
    return []


def value_problems(config, num_devices: int) -> list[str]:
    """Impossible values and sizes of a config whose fields already have the right types."""
    problems = []
    for name in POSITIVE:
        value = _get(config, name)
        if not (_number(value) and math.isfinite(value) and value > 0):
            problems.append(f"{name}: must be a positive finite number, got {value!r}")
    if config.batch_size > 0 and config.batch_size % num_devices:
        problems.append(
            f"batch_size: {config.batch_size} is not divisible by the {num_devices} devices"
        )
    image, hm = config.image_size, config.heatmap_size
    if image > 0 and hm > 0:
        if image % hm:
            problems.append(f"heatmap_size: {hm} does not divide image_size {image}")
        elif image != 4 * hm:
            problems.append(
                f"heatmap_size: FAN's heatmaps are a quarter of its input: image_size {image} "
                f"needs heatmap_size {image // 4}, got {hm}"
            )
        if not (config.window >= 1 and config.window % 2 == 1):
            problems.append(f"window: must be a positive odd int, got {config.window}")
        elif config.window > hm:
            problems.append(f"window: {config.window} is larger than the {hm}x{hm} heatmap")
    depth, width = config.model.depth, config.model.width
    if depth < 1:
        problems.append(f"model.depth: must be >= 1, got {depth}")
    elif image > 0 and image % hourglass.input_multiple(depth):
        problems.append(
            f"image_size: FAN of depth {depth} needs a multiple of "
            f"{hourglass.input_multiple(depth)}, got {image}"
        )
    if width < 8 or width % 8:
        problems.append(f"model.width: must be a positive multiple of 8, got {width}")
    for name, value, choices in (
        ("quantize", config.quantize, heatmaps.QUANTIZE),
        ("decoder", config.decoder, heatmaps.METHODS),
        ("nme_norm", config.nme_norm, metrics.NORMS),
        ("dtype", config.dtype, DTYPES),
        ("optimizer", config.optimizer, tuple(optimizer.OPTIMIZERS)),
        ("lr_schedule", config.lr_schedule, optimizer.LR_SCHEDULES),
    ):
        if value not in choices:
            problems.append(f"{name}: must be one of {choices}, got {value!r}")
    problems += _range(config, "augment.scale") + _range(config, "augment.colour")
    for name in ("augment.rotation", "augment.translation", "warmup_steps"):
        if _get(config, name) < 0:
            problems.append(f"{name}: must be >= 0, got {_get(config, name)}")
    if not config.eval_splits:
        problems.append("eval_splits: must name at least one split")
    return problems


def validate(config, num_devices: int, reference=None) -> None:
    """Raises ConfigError listing every problem of `config` for a run on `num_devices` devices.

    reference: the config whose fields and types are allowed (default: configs/default.py's).
    """
    if reference is None:
        reference = default.get_config()
    problems = type_problems(config, reference)
    if not problems:  # value checks assume the types are right
        problems = value_problems(config, num_devices)
    if problems:
        raise ConfigError(
            f"{len(problems)} problem(s) in the config:\n" + "\n".join(f"  {p}" for p in problems)
        )
