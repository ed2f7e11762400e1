"""Model checkpoints: variables plus the model config, through orbax.

A checkpoint directory holds one orbax step folder per saved step, each with
the items "variables" (a pytree of arrays) and "model_config" (JSON), and, for
training runs, "train_state" (the step and the optimiser state). Every orbax
call of the project lives here, so an orbax API change touches one file.
"""

import os

import jax
import orbax.checkpoint as ocp

from sphm_jax.models import FAN
from sphm_jax.models import abstract_variables

VARIABLES = "variables"
MODEL_CONFIG = "model_config"
TRAIN_STATE = "train_state"


def _manager(directory, create=False, max_to_keep=None):
    options = ocp.CheckpointManagerOptions(
        create=create, max_to_keep=max_to_keep, enable_async_checkpointing=False
    )  # Writes are done when save returns.
    return ocp.CheckpointManager(
        os.path.abspath(os.fspath(directory)),
        options=options,
        item_names=(VARIABLES, MODEL_CONFIG, TRAIN_STATE),
    )


def save(directory, step, variables, model_config, max_to_keep=None, train_state=None):
    """Writes `variables`, the JSON-able dict `model_config` and, optionally, `train_state` as `step`."""
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


def latest_step(directory):
    """The newest saved step in `directory`, or None if there is none."""
    if not os.path.isdir(directory):
        return None
    with _manager(directory) as manager:
        return manager.latest_step()


def _restore(directory, step, **items):
    """Restores the named items of `step` (default: latest), with clear errors."""
    if not os.path.isdir(directory):
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


def restore(directory, step=None, target=None):
    """Reads (model_config, variables) of `step` (default: the latest).

    `target` (a pytree of arrays or jax.ShapeDtypeStruct) fixes the structure,
    dtypes and shardings of the restored variables; without it they come back
    as saved, on the default device.
    """
    if target is not None:
        target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    restored = _restore(
        directory,
        step,
        **{VARIABLES: ocp.args.StandardRestore(target), MODEL_CONFIG: ocp.args.JsonRestore()},
    )
    return dict(restored[MODEL_CONFIG]), restored[VARIABLES]


def restore_training(directory, variables_target, train_state_target, step=None):
    """(variables, train_state) of `step` (default: the latest), shaped and sharded like the targets."""
    as_struct = lambda t: jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, t)
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
