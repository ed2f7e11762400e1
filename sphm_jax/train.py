"""Training and evaluation: create_train_state, train_step, eval_step, train_and_evaluate.

The steps are pure functions jitted over a 1-D device mesh ("data") spanning
every device of every host: the batch is split along it, the state is
replicated, and XLA inserts the gradient and BatchNorm all-reduces.
train_and_evaluate is the only place with side effects.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import importlib
import importlib.util
import json
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging
from flax.training import train_state
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sphm_jax import (
    augment,
    checkpoints,
    config_validation,
    geometry,
    heatmaps,
    inference,
    input_pipeline,
    layouts,
    metrics,
    preemption,
    storage,
)
from sphm_jax import siamese as siamese_lib
from sphm_jax.models import FAN

TRAIN_KEYS = ("image", "landmarks", "visible")
EVAL_KEYS = ("image", "crop")


class TrainState(train_state.TrainState):
    batch_stats: Any


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """The static part of a step (hashable, so jit specialises on it)."""

    seed: int
    image_size: int
    heatmap_size: int
    sigma: float
    quantize: str | None
    siamese: bool
    decoder: str
    window: int
    temperature: float
    augment: augment.AugmentConfig
    flip_permutation: tuple[int, ...]

    @property
    def stride(self) -> int:
        return self.image_size // self.heatmap_size

    @classmethod
    def from_config(cls, config, num_landmarks: int) -> StepConfig:
        a = config.augment
        return cls(
            seed=int(config.seed),
            image_size=config.image_size,
            heatmap_size=config.heatmap_size,
            sigma=float(config.sigma),
            quantize=config.quantize,
            siamese=bool(config.siamese),
            decoder=config.decoder,
            window=int(config.window),
            temperature=float(config.temperature),
            augment=augment.AugmentConfig(
                rotation=float(a.rotation),
                scale=tuple(a.scale),
                translation=float(a.translation),
                flip=bool(a.flip),
                colour=tuple(a.colour),
            ),
            flip_permutation=layouts.get_layout(num_landmarks).flip_permutation,
        )


def create_model(config, num_landmarks: int) -> FAN:
    return FAN(
        num_stacks=config.model.num_stacks,
        num_landmarks=num_landmarks,
        width=config.model.width,
        depth=config.model.depth,
        dtype=jnp.dtype(config.dtype),
    )


def learning_rate_schedule(config, steps_per_epoch: int) -> optax.Schedule:
    """The config's schedule over the run's steps, after `warmup_steps` of linear warm-up.

    "step": lr, times lr_drop_factor at each of lr_drop_epochs (scaled when
    num_train_steps is set); "cosine": lr decayed to 0 along a half cosine.
    """
    total = num_train_steps(config, steps_per_epoch)
    warmup = min(int(config.warmup_steps), total)
    if config.lr_schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, config.learning_rate, warmup, max(total, warmup + 1), end_value=0.0
        )
    epoch_steps = total / config.num_epochs  # a run shortened by num_train_steps keeps the shape
    boundaries = {int(e * epoch_steps): config.lr_drop_factor for e in config.lr_drop_epochs}
    drops = optax.piecewise_constant_schedule(config.learning_rate, boundaries)
    if not warmup:
        return drops
    ramp = optax.linear_schedule(0.0, config.learning_rate, warmup)
    return lambda step: jnp.minimum(ramp(step), drops(step))


def num_train_steps(config, steps_per_epoch: int) -> int:
    if config.num_train_steps > 0:
        return int(config.num_train_steps)
    return int(config.num_epochs * steps_per_epoch)


def create_train_state(rng, config, model: FAN, steps_per_epoch: int) -> TrainState:
    images = jnp.zeros((1, config.image_size, config.image_size, 3), jnp.float32)
    # One compiled init: eager Flax init compiles each op apart (16 s for a tiny FAN).
    variables = jax.jit(functools.partial(model.init, train=False))(rng, images)
    optimizer = {"adam": optax.adam, "sgd": optax.sgd}[config.optimizer]
    tx = optimizer(learning_rate_schedule(config, steps_per_epoch))
    return TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        tx=tx,
    )


def target_heatmaps(points, cfg: StepConfig):
    """Eq. 3 (or the quantized baselines): targets from crop-pixel points."""
    in_map = geometry.image_to_heatmap(points, cfg.stride)
    return heatmaps.encode(in_map, (cfg.heatmap_size,) * 2, cfg.sigma, cfg.quantize)


def siamese_loss(outputs, batch, matrices, flipped, cfg: StepConfig):
    """Eq. 6 on every stack: the mean of the two warped-back views against X's targets."""
    target = target_heatmaps(batch["landmarks"], cfg)
    loss = 0.0
    for out in outputs:
        view_0, view_1 = jnp.split(out, 2)
        merged = siamese_lib.siamese_heatmaps(
            view_0, view_1, matrices, flipped, cfg.stride, cfg.flip_permutation
        )
        loss += siamese_lib.masked_l2(0.5 * merged, target, batch["visible"])
    return loss


def train_step(state: TrainState, batch, cfg: StepConfig):
    """One optimiser step on a global batch; the augmentation's randomness is (seed, step)'s."""
    key = jax.random.fold_in(jax.random.key(cfg.seed), state.step)
    images = batch["image"].astype(jnp.float32) / 255.0
    num_views = 2 if cfg.siamese else 1
    views = [
        augment.random_views(
            k, images, batch["landmarks"], batch["visible"], cfg.augment, cfg.flip_permutation
        )
        for k in jax.random.split(key, num_views)
    ]
    inputs = jnp.concatenate([v[0] for v in views])

    def loss_fn(params):
        outputs, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats},
            inputs,
            train=True,
            mutable=["batch_stats"],
        )
        if cfg.siamese:
            matrices = jnp.stack([v[3] for v in views])
            flipped = jnp.stack([v[4] for v in views])
            loss = siamese_loss(outputs, batch, matrices, flipped, cfg)
        else:
            _, points, visible, _, _ = views[0]
            target = target_heatmaps(points, cfg)
            loss = sum(siamese_lib.masked_l2(out, target, visible) for out in outputs)
        return loss, updates["batch_stats"]

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    grad_norm = optax.tree.norm(grads)
    finite = finite_checks(loss, grad_norm, new_state)
    # A non-finite step leaves the state as it was: nothing non-finite can be saved. One
    # conditional, not a select per leaf (hundreds of kernels to compile).
    state = jax.lax.cond(all_finite(finite), lambda: new_state, lambda: state)
    return state, {"loss": loss, "grad_norm": grad_norm, "finite": finite}


def variables_of(state: TrainState) -> dict:
    return {"params": state.params, "batch_stats": state.batch_stats}


def finite_checks(loss, grad_norm, state: TrainState) -> dict:
    """Whether the loss, the gradient norm and each new variable (bool[leaves]) are finite."""
    return {
        "loss": jnp.isfinite(loss),
        "grad_norm": jnp.isfinite(grad_norm),
        "variables": checkpoints.finite_per_leaf(variables_of(state)),
    }


def all_finite(finite: dict) -> jax.Array:
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


def eval_step(state: TrainState, batch, cfg: StepConfig):
    """Landmarks in original image pixels: network, decoder, heatmap -> crop -> image."""
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    points, _ = inference.landmarks(
        state.apply_fn,
        variables,
        batch["image"],
        batch["crop"],
        decoders=(cfg.decoder,),
        window=cfg.window,
        temperature=cfg.temperature,
    )
    return points[cfg.decoder]


# --- the training shell: everything below has side effects ------------------------------------


def load_builder(name: str, config):
    """The TFDS builder `name` of tfds_builders/, prepared once (by process 0) and shared."""
    module = f"tfds_builders.{name.split('/')[0]}"
    if importlib.util.find_spec(module) is not None:
        importlib.import_module(module)  # registers the builder
    builder = tfds.builder(name, data_dir=config.data_dir)
    if jax.process_index() == 0:
        download = tfds.download.DownloadConfig(manual_dir=config.manual_dir)
        builder.download_and_prepare(download_config=download)
    multihost_utils.sync_global_devices(f"prepared {name}")
    if jax.process_index() != 0:
        builder = tfds.builder(name, data_dir=config.data_dir)
    return builder


def train_input(builder, config, start_step: int = 0):
    """input_pipeline.train_batches with the config's split, batch, seed and crop settings."""
    return input_pipeline.train_batches(
        builder,
        config.train_split,
        global_batch_size=config.batch_size,
        image_size=config.image_size,
        seed=config.seed,
        crop_scale=config.crop_scale,
        start_step=start_step,
    )


def train_batch_shapes(builder, config, sharding) -> dict:
    """The global training batch train_input feeds the step, as jax.ShapeDtypeStructs."""
    image = builder.info.features["image"]
    k = builder.info.features["landmarks"].shape[0]
    shapes = {
        "image": ((config.batch_size, config.image_size, config.image_size, 3), image.np_dtype),
        "landmarks": ((config.batch_size, k, 2), np.float32),
        "visible": ((config.batch_size, k), np.float32),
    }
    return {n: jax.ShapeDtypeStruct(s, d, sharding=sharding) for n, (s, d) in shapes.items()}


def compile_with_input(train_fn, state, builder, config, sharding, start: int):
    """(train_fn compiled, device batches from step start + 1), the crops made meanwhile."""
    put = functools.partial(to_global, keys=TRAIN_KEYS, sharding=sharding)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        shapes = train_batch_shapes(builder, config, sharding)
        compiling = pool.submit(lambda: train_fn.lower(state, shapes).compile())
        batches = input_pipeline.prefetch_to_device(train_input(builder, config, start), put)
        return compiling.result(), batches
    finally:
        pool.shutdown(wait=False)  # a SIGTERM here leaves without waiting for the compiler


def make_mesh(devices) -> jax.sharding.Mesh:
    """A 1-D "data" mesh; Auto axes let XLA place the collectives (no sharding in the types)."""
    return jax.make_mesh(
        (len(devices),), ("data",), devices=devices, axis_types=(jax.sharding.AxisType.Auto,)
    )


def to_global(batch, keys, sharding):
    """This process's numpy batch -> global jax arrays split along the mesh's data axis."""
    return {k: jax.make_array_from_process_local_data(sharding, batch[k]) for k in keys}


def _gather(values: np.ndarray) -> np.ndarray:
    """Concatenate a per-process numpy array over processes (a no-op on one process)."""
    if jax.process_count() == 1:
        return values
    return np.asarray(multihost_utils.process_allgather(values, tiled=True))


def _gather_strings(values, width: int = 64) -> list[str]:
    raw = np.zeros((len(values), width), np.uint8)
    for i, v in enumerate(values):
        b = v if isinstance(v, bytes) else str(v).encode()
        raw[i, : len(b[:width])] = np.frombuffer(b[:width], np.uint8)
    return [bytes(r).rstrip(b"\0").decode() for r in _gather(raw)]


def summarize(nmes: np.ndarray, auc_threshold: float, failure_threshold: float) -> dict:
    return {
        "num_examples": len(nmes),
        "nme": float(np.mean(nmes)) if len(nmes) else float("nan"),
        f"auc@{auc_threshold:g}": float(metrics.auc(nmes, auc_threshold)),
        f"failure_rate@{failure_threshold:g}": float(metrics.failure_rate(nmes, failure_threshold)),
    }


def _subset_columns(batch, features) -> dict:
    """The metadata features to score per value, nested ones (WFLW's attributes) flattened."""
    columns = {}
    for f in features:
        value = batch[f]
        if isinstance(value, dict):
            columns.update({f"{f}/{k}": np.asarray(v) for k, v in value.items()})
        else:
            columns[f] = np.asarray(value)
    return columns


def collect_predictions(
    predict_fn, builder, split, config, sharding, mesh, on_batch=None, progress=None
) -> dict:
    """Every example of `split` once through predict_fn, gathered over processes (numpy).

    predict_fn(global batch) -> dict of arrays sharded along "data" (e.g. points
    per decoder). Returns {"outputs": that dict over the split, "landmarks" (in
    original image pixels), "visible", "bbox", "subsets": {feature: values}} for
    config.subset_features. on_batch(batch, outputs, keep, gt) sees each
    process-local batch and its kept faces' landmarks in original pixels (e.g. to keep
    images); progress(n) counts examples.
    """
    steps = input_pipeline.eval_steps(builder, split, config.batch_size)
    batches = input_pipeline.eval_batches(
        builder,
        split,
        global_batch_size=config.batch_size,
        image_size=config.image_size,
        crop_scale=config.crop_scale,
    )
    local = {"outputs": {}, "landmarks": [], "visible": [], "bbox": [], "subsets": {}}
    for _ in range(steps):
        batch = next(batches)
        outputs = predict_fn(to_global(batch, EVAL_KEYS, sharding))
        outputs = {
            k: np.asarray(multihost_utils.global_array_to_host_local_array(v, mesh, P("data")))
            for k, v in outputs.items()
        }
        keep = batch["mask"] > 0
        inverse = np.asarray(geometry.invert(batch["crop"][keep]))
        gt = np.asarray(geometry.transform_points(batch["landmarks"][keep], inverse))
        if on_batch is not None:
            on_batch(batch, outputs, keep, gt)
        if progress is not None:
            progress(int(keep.sum()))
        for k, v in outputs.items():
            local["outputs"].setdefault(k, []).append(v[keep])
        local["landmarks"].append(gt)
        local["visible"].append(batch["visible"][keep])
        local["bbox"].append(batch["bbox"][keep])
        for k, v in _subset_columns(batch, config.subset_features).items():
            local["subsets"].setdefault(k, []).append(v[keep])

    def gather(parts):
        values = np.concatenate(parts)
        return (
            np.asarray(_gather_strings(values)) if values.dtype.kind in "SUO" else _gather(values)
        )

    return {
        "outputs": {k: gather(v) for k, v in local["outputs"].items()},
        "subsets": {k: gather(v) for k, v in local["subsets"].items()},
        **{k: gather(local[k]) for k in ("landmarks", "visible", "bbox")},
    }


def split_nmes(collected: dict, points, norm: str) -> np.ndarray:
    """Per-image NME of predicted points against the collected ground truth."""
    return np.asarray(
        metrics.nme(
            points,
            collected["landmarks"],
            norm,
            visible=collected["visible"],
            boxes=collected["bbox"] if norm != "inter_ocular" else None,
        )
    )


def score(nmes: np.ndarray, subsets: dict, auc_threshold: float, failure_threshold: float):
    """summarize() of the whole split and of each subset: a string value, or a set flag."""
    result = summarize(nmes, auc_threshold, failure_threshold)
    for f, values in subsets.items():
        if values.dtype.kind in "SUO":
            for name in sorted(set(values.tolist())):
                sel = values == name
                result[f"{f}={name}"] = summarize(nmes[sel], auc_threshold, failure_threshold)
            continue
        flags = values.reshape(len(values), -1)
        for col in range(flags.shape[1]):
            sel = flags[:, col] != 0
            if sel.any():
                label = f if flags.shape[1] == 1 else f"{f}[{col}]"
                result[label] = summarize(nmes[sel], auc_threshold, failure_threshold)
    return result


def evaluate(state, builder, split, config, eval_fn, sharding, mesh) -> dict:
    """NME, AUC and failure rate of one split (and of its subsets), over every process's share."""
    collected = collect_predictions(
        lambda batch: {"points": eval_fn(state, batch)}, builder, split, config, sharding, mesh
    )
    nmes = split_nmes(collected, collected["outputs"]["points"], config.nme_norm)
    return score(nmes, collected["subsets"], config.auc_threshold, config.failure_threshold)


def initialise_from(state: TrainState, directory: str, model: FAN) -> TrainState:
    """The state with the variables of another run's checkpoint (a fresh optimiser)."""
    checkpoints.check_model_config(directory, model.config())
    target = {"params": state.params, "batch_stats": state.batch_stats}
    _, variables = checkpoints.restore(directory, target=target)
    logging.info("initialised from %s", directory)
    return state.replace(**variables)


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

    def check(self, state: TrainState) -> None:
        names = checkpoints.leaf_names(variables_of(state))
        message = self.record and describe_nonfinite(jax.device_get(self.record), names)
        if message:
            raise FloatingPointError(message)


class Reporter:
    """metrics.jsonl, TensorBoard events and a progress line; process 0 writes, the others stay quiet."""

    def __init__(self, workdir: str, total_steps: int, batch_size: int):
        self.active = jax.process_index() == 0
        self.total, self.batch_size = total_steps, batch_size
        self.workdir = storage.path(workdir)
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


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, stop_at_step: int | None = None
) -> dict:
    """Trains (resuming from workdir's latest checkpoint), evaluates, writes eval_results.json.

    stop_at_step: checkpoint there and return {} without evaluating, as a preempted run would.
    A SIGTERM raises preemption.Preempted: at once before the first step, after a checkpoint
    at the next step while training (on every process of a multi-host run), between batches
    during evaluation. A rerun with the same workdir ends as an uninterrupted run would.
    """
    config_validation.validate(config, jax.device_count())
    with preemption.sigterm_stops_training() as stop:
        return _train_and_evaluate(config, workdir, stop_at_step, stop)


def _train_and_evaluate(config, workdir: str, stop_at_step: int | None, stop) -> dict:
    workdir = storage.path(workdir)  # checked once: local made absolute, remote clients present
    workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:  # predict and evaluate read the crop and decoder settings here
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    builder = load_builder(config.dataset, config)
    eval_builder = load_builder(config.eval_dataset, config) if config.eval_dataset else builder
    stop.check(preemption.BEFORE_TRAINING)
    num_landmarks = builder.info.features["landmarks"].shape[0]
    if eval_builder.info.features["landmarks"].shape[0] != num_landmarks:
        raise ValueError(
            f"eval_dataset {config.eval_dataset} has a different number of landmarks "
            f"than dataset {config.dataset}"
        )
    cfg = StepConfig.from_config(config, num_landmarks)
    model = create_model(config, num_landmarks)

    mesh = make_mesh(jax.devices())
    data_sharding, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    per_epoch = input_pipeline.steps_per_epoch(builder, config.train_split, config.batch_size)
    total = num_train_steps(config, per_epoch)
    init = jax.jit(
        lambda rng: create_train_state(rng, config, model, per_epoch), out_shardings=replicated
    )
    state = init(jax.random.key(config.seed))

    ckpt_dir = workdir / "checkpoints"
    start = checkpoints.latest_step(ckpt_dir) or 0
    if start:
        checkpoints.check_model_config(ckpt_dir, model.config())
        variables, extra = checkpoints.restore_training(
            ckpt_dir,
            {"params": state.params, "batch_stats": state.batch_stats},
            {"step": state.step, "opt_state": state.opt_state},
        )
        state = state.replace(step=extra["step"], opt_state=extra["opt_state"], **variables)
        logging.info("resumed from step %d in %s", start, ckpt_dir)
    elif config.init_checkpoint:
        state = initialise_from(state, config.init_checkpoint, model)

    guard = NonFiniteGuard()

    def save(step):
        guard.check(state)  # never checkpoint past a non-finite step
        checkpoints.save(
            ckpt_dir,
            step,
            variables_of(state),
            model.config(),
            max_to_keep=config.keep_checkpoints,
            train_state={"step": state.step, "opt_state": state.opt_state},
        )

    train_fn = jax.jit(
        functools.partial(train_step, cfg=cfg),
        in_shardings=(replicated, data_sharding),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )
    eval_jit = jax.jit(
        functools.partial(eval_step, cfg=cfg),
        in_shardings=(replicated, data_sharding),
        out_shardings=data_sharding,
    )

    def eval_fn(*args):
        stop.check("during evaluation")  # long evaluations: a SIGTERM need not wait for the end
        return eval_jit(*args)

    if start < total:  # a run stopped in its final evaluation only evaluates
        train_fn, batches = compile_with_input(
            train_fn, state, builder, config, data_sharding, start
        )
    reporter = Reporter(workdir, total, config.batch_size)
    reporter.forget_after(start)
    results = {}

    def run_eval(step):
        nonlocal results
        results = {
            split: evaluate(state, eval_builder, split, config, eval_fn, data_sharding, mesh)
            for split in config.eval_splits
        }
        reporter.scalars(step, {f"eval/{s}/nme": r["nme"] for s, r in results.items()})
        if jax.process_index() == 0:
            (workdir / "eval_results.json").write_text(
                json.dumps({"step": step, "dataset": config.dataset, "results": results}, indent=2)
            )
        logging.info("eval at step %d: %s", step, json.dumps(results))

    reporter.progress(start, float("nan"))
    stop.check(preemption.BEFORE_TRAINING)
    stop.training = True  # from here a SIGTERM waits for the step and its checkpoint
    logging.info("training from step %d to %d", start, total)
    previous = None
    for step in range(start + 1, total + 1):
        state, step_metrics = train_fn(state, next(batches))
        # At most this step in flight: a SIGTERM waits for one step, not a queue of them.
        jax.block_until_ready(previous)
        previous = step_metrics["loss"]
        guard.note(step, step_metrics)
        if step % config.log_every_steps == 0 or step == total:
            guard.check(state)
            values = {k: float(step_metrics[k]) for k in ("loss", "grad_norm")}
            values.update(reporter.progress(step, values["loss"]))
            reporter.scalars(step, values)
        preempted = stop(step)
        if (preempted or step == stop_at_step) and step != total:
            save(step)
            logging.info("stopped at step %d; rerun with the same workdir to continue", step)
            if preempted:
                raise preemption.Preempted(f"stopped at step {step}")
            return {}
        # Evaluate before the checkpoint: one stopped mid-evaluation resumes before it, redoes it.
        if step % config.eval_every_steps == 0 and step != total:
            run_eval(step)
        if step % config.checkpoint_every_steps == 0 and step != total:
            save(step)
    if start < total or checkpoints.latest_step(ckpt_dir) != total:
        save(total)
    run_eval(total)
    return results
