"""Model checkpoints: variables plus the model config, through orbax.

A checkpoint directory holds one orbax step folder per saved step, each with
the items "variables" (a pytree of arrays) and "model_config" (JSON), and, for
training runs, "train_state" (the step and the optimiser state). Every orbax
call of the project lives here, so an orbax API change touches one file.
"""

import json

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from sphm_jax.models import FAN, abstract_variables
from sphm_jax.models.hourglass import ARCH_FIELDS
from sphm_jax.training import paths

VARIABLES = "variables"
MODEL_CONFIG = "model_config"
TRAIN_STATE = "train_state"
# Settings a training workdir's config.json supplies to predict/evaluate; the rest keep defaults.
WORKDIR_SETTINGS = ("image_size", "crop_scale", "decoder", "window", "temperature", "dtype")


def _manager(directory, create=False, max_to_keep=None):
    options = ocp.CheckpointManagerOptions(
        create=create, max_to_keep=max_to_keep, enable_async_checkpointing=False
    )  # Writes are done when save returns.
    return ocp.CheckpointManager(
        paths.path(directory),
        options=options,
        item_names=(VARIABLES, MODEL_CONFIG, TRAIN_STATE),
    )


def save(directory, step, variables, model_config, max_to_keep=None, train_state=None):
    """Writes `variables`, the JSON-able dict `model_config` and, optionally, `train_state` as `step`."""
    bad = nonfinite_leaves(variables)
    if bad:
        raise FloatingPointError(
            f"{directory}: refusing to save step {step}: non-finite values in {', '.join(bad[:8])}"
        )
    items = {
        VARIABLES: ocp.args.StandardSave(variables),
        MODEL_CONFIG: ocp.args.JsonSave(dict(model_config)),
    }
    if train_state is not None:
        items[TRAIN_STATE] = ocp.args.StandardSave(train_state)
    args = ocp.args.Composite(**items)
    with _manager(directory, create=True, max_to_keep=max_to_keep) as manager:
        if step in manager.all_steps():
            raise FileExistsError(
                f"{directory}: already holds a checkpoint for step "
                f"{step}; delete it or save elsewhere"
            )
        manager.save(step, args=args, force=True)


def leaf_names(tree) -> list[str]:
    """The paths of the leaves of `tree`, as "params/conv1/kernel"."""
    return [
        jax.tree_util.keystr(path, simple=True, separator="/")
        for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]
    ]


def finite_per_leaf(tree) -> jax.Array:
    """bool[number of leaves]: whether each leaf of `tree` is free of NaN and infinity (jittable)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]) if leaves else jnp.ones(0, bool)


def nonfinite_leaves(tree) -> list[str]:
    """The paths ("params/conv1/kernel") of the leaves of `tree` holding a NaN or an infinity."""
    flags = jax.device_get(jax.jit(finite_per_leaf)(tree))
    return [name for name, ok in zip(leaf_names(tree), flags) if not ok]


def latest_step(directory):
    """The newest saved step in `directory`, or None if there is none."""
    if not paths.path(directory).is_dir():
        return None
    with _manager(directory) as manager:
        return manager.latest_step()


def _restore(directory, step, **items):
    """Restores the named items of `step` (default: latest), with clear errors."""
    if not paths.path(directory).is_dir():
        raise FileNotFoundError(f"{directory}: no such checkpoint directory")
    with _manager(directory) as manager:
        steps = list(manager.all_steps())
        if not steps:
            raise FileNotFoundError(f"{directory}: holds no checkpoint")
        step = max(steps) if step is None else step
        if step not in steps:
            raise FileNotFoundError(
                f"{directory}: no checkpoint for step {step}; saved steps: {steps}"
            )
        return manager.restore(step, args=ocp.args.Composite(**items))


def restore_config(directory, step=None):
    """The model config of `step` (default: the latest), without the arrays."""
    restored = _restore(directory, step, **{MODEL_CONFIG: ocp.args.JsonRestore()})
    return dict(restored[MODEL_CONFIG])


def check_model_config(directory, expected, step=None):
    """Raises a ValueError naming both models if `directory` holds another FAN than `expected`."""
    found = restore_config(directory, step)
    if found != dict(expected):
        raise ValueError(
            f"{directory}: checkpoint holds FAN({found}), expected FAN({dict(expected)})"
        )


def _shape_differences(saved_config, target) -> list[str]:
    """How `target` differs from the variables of FAN(**saved_config) (structure and shapes)."""
    saved_tree = abstract_variables(FAN(**saved_config))
    saved = dict(zip(leaf_names(saved_tree), jax.tree_util.tree_leaves(saved_tree)))
    wanted = dict(zip(leaf_names(target), jax.tree_util.tree_leaves(target)))
    missing = [f"{n} (not saved)" for n in wanted if n not in saved]
    extra = [f"{n} (not in the target)" for n in saved if n not in wanted]
    shapes = [
        f"{n} saved {saved[n].shape}, target {wanted[n].shape}"
        for n in wanted
        if n in saved and saved[n].shape != wanted[n].shape
    ]
    return missing + extra + shapes


def _check_target(directory, step, target):
    """A clear error when a FAN checkpoint's variables cannot fill `target`."""
    config = restore_config(directory, step)
    if set(config) != set(ARCH_FIELDS):
        return  # not a FAN checkpoint: orbax checks the shapes
    differences = _shape_differences(config, target)
    if differences:
        raise ValueError(
            f"{directory}: checkpoint holds FAN({config}), whose variables do not fit the "
            f"requested model: {'; '.join(differences[:4])}"
            + (f" ({len(differences)} differences)" if len(differences) > 4 else "")
        )


def _on_default_device(leaf) -> jax.ShapeDtypeStruct:
    leaf = ocp.utils.to_shape_dtype_struct(leaf)
    if getattr(leaf, "sharding", None) is not None:
        return leaf
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device)


def restore(directory, step=None, target=None):
    """Reads (model_config, variables) of `step` (default: the latest).

    `target` (a pytree of arrays or jax.ShapeDtypeStruct) fixes the structure,
    dtypes and shardings of the restored variables (a leaf without a sharding
    goes to the default device, whatever devices saved it); without a target
    they come back as saved.
    """
    if target is not None:
        target = jax.tree_util.tree_map(_on_default_device, target)
        _check_target(directory, step, target)
    restored = _restore(
        directory,
        step,
        **{VARIABLES: ocp.args.StandardRestore(target), MODEL_CONFIG: ocp.args.JsonRestore()},
    )
    return dict(restored[MODEL_CONFIG]), restored[VARIABLES]


def restore_training(directory, variables_target, train_state_target, step=None):
    """(variables, train_state) of `step` (default: the latest), shaped and sharded like the targets."""
    as_struct = lambda t: jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, t)
    _check_target(directory, step, as_struct(variables_target))
    restored = _restore(
        directory,
        step,
        **{
            VARIABLES: ocp.args.StandardRestore(as_struct(variables_target)),
            TRAIN_STATE: ocp.args.StandardRestore(as_struct(train_state_target)),
        },
    )
    return restored[VARIABLES], restored[TRAIN_STATE]


def load_model(directory, step=None, **module_kwargs):
    """(FAN module, variables) from a checkpoint; module_kwargs e.g. dtype."""
    model = FAN(**restore_config(directory, step), **module_kwargs)
    _, variables = restore(directory, step, target=abstract_variables(model))
    return model, variables


def _workdir_settings(path):
    """(checkpoint directory, settings) of a training workdir or of a checkpoint directory."""
    if (path / "checkpoints").is_dir():
        settings = {}
        if (path / "config.json").exists():
            config = json.loads((path / "config.json").read_text())
            settings = {k: config[k] for k in WORKDIR_SETTINGS if k in config}
        return path / "checkpoints", settings
    return path, {}


def load_checkpoint(path, step=None, **overrides) -> tuple:
    """(model, variables, settings) of a workdir or checkpoint directory.

    settings: the workdir's config.json (WORKDIR_SETTINGS), then the overrides that are not
    None; its dtype is used to build the model and not returned.
    """
    directory, settings = _workdir_settings(paths.path(path))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    dtype = jnp.dtype(settings.pop("dtype", "float32"))
    model, variables = load_model(directory, step, dtype=dtype)
    return model, variables, settings
