"""Training and evaluation: create_train_state, train_step, eval_step, train_and_evaluate.

The steps are pure functions jitted over a 1-D device mesh ("data") spanning
every device of every host: the batch is split along it, the state is
replicated, and XLA inserts the gradient and BatchNorm all-reduces.
train_and_evaluate is the only place with side effects.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import json
import os
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

from sphm_jax import augment, checkpoints, geometry, heatmaps, input_pipeline, layouts, metrics
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
    def from_config(cls, config, num_landmarks: int) -> "StepConfig":
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
    """lr, times lr_drop_factor at each of lr_drop_epochs (scaled when num_train_steps is set)."""
    total = num_train_steps(config, steps_per_epoch)
    epoch_steps = total / config.num_epochs  # a run shortened by num_train_steps keeps the shape
    boundaries = {int(e * epoch_steps): config.lr_drop_factor for e in config.lr_drop_epochs}
    return optax.piecewise_constant_schedule(config.learning_rate, boundaries)


def num_train_steps(config, steps_per_epoch: int) -> int:
    if config.num_train_steps > 0:
        return int(config.num_train_steps)
    return int(config.num_epochs * steps_per_epoch)


def create_train_state(rng, config, model: FAN, steps_per_epoch: int) -> TrainState:
    images = jnp.zeros((1, config.image_size, config.image_size, 3), jnp.float32)
    variables = model.init(rng, images, train=False)
    tx = optax.adam(learning_rate_schedule(config, steps_per_epoch))
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
    """One Adam step on a global batch; the augmentation's randomness depends on (seed, step) only."""
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
    state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    grad_norm = optax.tree.norm(grads)
    return state, {"loss": loss, "grad_norm": grad_norm}


def eval_step(state: TrainState, batch, cfg: StepConfig):
    """Landmarks in original image pixels: network, decoder, heatmap -> crop -> image."""
    images = batch["image"].astype(jnp.float32) / 255.0
    outputs = state.apply_fn(
        {"params": state.params, "batch_stats": state.batch_stats}, images, train=False
    )
    points = heatmaps.decode(outputs[-1], cfg.decoder, cfg.window, cfg.temperature)
    in_crop = geometry.heatmap_to_image(points, cfg.stride)
    return geometry.transform_points(in_crop, geometry.invert(batch["crop"]))


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


def summarize(nmes: np.ndarray, config) -> dict:
    return {
        "num_examples": int(len(nmes)),
        "nme": float(np.mean(nmes)),
        f"auc@{config.auc_threshold:g}": float(metrics.auc(nmes, config.auc_threshold)),
        f"failure_rate@{config.failure_threshold:g}": float(
            metrics.failure_rate(nmes, config.failure_threshold)
        ),
    }


def evaluate(state, builder, split, config, eval_fn, sharding, mesh) -> dict:
    """NME, AUC and failure rate of one split (and of its subsets), over every process's share."""
    steps = input_pipeline.eval_steps(builder, split, config.batch_size)
    batches = input_pipeline.eval_batches(
        builder,
        split,
        global_batch_size=config.batch_size,
        image_size=config.image_size,
        crop_scale=config.crop_scale,
    )
    nmes, subsets = [], {f: [] for f in config.subset_features}
    for _ in range(steps):
        batch = next(batches)
        pred = eval_fn(state, to_global(batch, EVAL_KEYS, sharding))
        pred = np.asarray(multihost_utils.global_array_to_host_local_array(pred, mesh, P("data")))
        keep = batch["mask"] > 0
        if not keep.any():
            continue
        inverse = np.asarray(geometry.invert(batch["crop"][keep]))
        gt = np.asarray(geometry.transform_points(batch["landmarks"][keep], inverse))
        nmes.append(
            np.asarray(
                metrics.nme(
                    pred[keep],
                    gt,
                    config.nme_norm,
                    visible=batch["visible"][keep],
                    boxes=batch["bbox"][keep] if config.nme_norm != "inter_ocular" else None,
                )
            )
        )
        for f in config.subset_features:
            subsets[f] += list(np.asarray(batch[f])[keep])
    local = np.concatenate(nmes) if nmes else np.zeros((0,), np.float32)
    all_nmes = _gather(local)
    result = summarize(all_nmes, config)
    for f, values in subsets.items():
        if np.asarray(values).dtype.kind in "SUO":
            names = np.asarray(_gather_strings(values))
            for name in sorted(set(names)):
                result[f"{f}={name}"] = summarize(all_nmes[names == name], config)
        else:
            flags = _gather(np.asarray(values).reshape(len(values), -1).astype(np.int32))
            for col in range(flags.shape[1]):
                sel = flags[:, col] != 0
                if sel.any():
                    label = f if flags.shape[1] == 1 else f"{f}[{col}]"
                    result[label] = summarize(all_nmes[sel], config)
    return result


def initialise_from(state: TrainState, directory: str, model: FAN) -> TrainState:
    """The state with the variables of another run's checkpoint (a fresh optimiser)."""
    found = checkpoints.restore_config(directory)
    if found != model.config():
        raise ValueError(
            f"init_checkpoint {directory} holds FAN({found}), this run builds FAN({model.config()})"
        )
    target = {"params": state.params, "batch_stats": state.batch_stats}
    _, variables = checkpoints.restore(directory, target=target)
    logging.info("initialised from %s", directory)
    return state.replace(**variables)


class Reporter:
    """metrics.jsonl, TensorBoard events and a progress line; process 0 writes, the others stay quiet."""

    def __init__(self, workdir: str, total_steps: int, batch_size: int):
        self.active = jax.process_index() == 0
        self.total, self.batch_size = total_steps, batch_size
        self.jsonl = os.path.join(workdir, "metrics.jsonl")
        self.writer = tf.summary.create_file_writer(workdir) if self.active else None
        self.last = (None, None)

    def scalars(self, step: int, values: dict) -> None:
        if not self.active:
            return
        with open(self.jsonl, "a") as f:
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

    stop_at_step: checkpoint there and return without evaluating, as a preempted run would.
    """
    tf.io.gfile.makedirs(workdir)
    builder = load_builder(config.dataset, config)
    eval_builder = load_builder(config.eval_dataset, config) if config.eval_dataset else builder
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

    ckpt_dir = os.path.join(workdir, "checkpoints")
    start = checkpoints.latest_step(ckpt_dir) or 0
    if start:
        variables, extra = checkpoints.restore_training(
            ckpt_dir,
            {"params": state.params, "batch_stats": state.batch_stats},
            {"step": state.step, "opt_state": state.opt_state},
        )
        state = state.replace(step=extra["step"], opt_state=extra["opt_state"], **variables)
        logging.info("resumed from step %d in %s", start, ckpt_dir)
    elif config.init_checkpoint:
        state = initialise_from(state, config.init_checkpoint, model)

    def save(step):
        checkpoints.save(
            ckpt_dir,
            step,
            {"params": state.params, "batch_stats": state.batch_stats},
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
    eval_fn = jax.jit(
        functools.partial(eval_step, cfg=cfg),
        in_shardings=(replicated, data_sharding),
        out_shardings=data_sharding,
    )
    batches = input_pipeline.train_batches(
        builder,
        config.train_split,
        global_batch_size=config.batch_size,
        image_size=config.image_size,
        seed=config.seed,
        crop_scale=config.crop_scale,
        start_step=start,
        shuffle_buffer=config.shuffle_buffer,
    )
    put = functools.partial(to_global, keys=TRAIN_KEYS, sharding=data_sharding)
    batches = input_pipeline.prefetch_to_device(batches, put)
    reporter = Reporter(workdir, total, config.batch_size)
    results = {}

    def run_eval(step):
        nonlocal results
        results = {
            split: evaluate(state, eval_builder, split, config, eval_fn, data_sharding, mesh)
            for split in config.eval_splits
        }
        reporter.scalars(step, {f"eval/{s}/nme": r["nme"] for s, r in results.items()})
        if jax.process_index() == 0:
            with tf.io.gfile.GFile(os.path.join(workdir, "eval_results.json"), "w") as f:
                json.dump(
                    {"step": step, "dataset": config.dataset, "results": results}, f, indent=2
                )
        logging.info("eval at step %d: %s", step, json.dumps(results))

    reporter.progress(start, float("nan"))
    for step in range(start + 1, total + 1):
        state, step_metrics = train_fn(state, next(batches))
        if step % config.log_every_steps == 0 or step == total:
            values = {k: float(v) for k, v in step_metrics.items()}
            values.update(reporter.progress(step, values["loss"]))
            reporter.scalars(step, values)
        if step == stop_at_step and step != total:
            save(step)
            logging.info("stopped at step %d; rerun with the same workdir to continue", step)
            return {}
        if step % config.checkpoint_every_steps == 0 and step != total:
            save(step)
        if step % config.eval_every_steps == 0 and step != total:
            run_eval(step)
    if start < total or checkpoints.latest_step(ckpt_dir) != total:
        save(total)
    run_eval(total)
    return results
