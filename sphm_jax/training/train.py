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
import json
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging
from flax.training import train_state

from sphm_jax import augment, inference, layouts, losses
from sphm_jax.data import input_pipeline
from sphm_jax.models import FAN
from sphm_jax.training import (
    checkpoints,
    config_loader,
    mesh,
    optimizer,
    paths,
    preemption,
    reporting,
    scoring,
)

TRAIN_KEYS = ("image", "landmarks", "visible")


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """The static part of a step (hashable, so jit specialises on it); the seed is in the state."""

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
        return cls(
            image_size=config.image_size,
            heatmap_size=config.heatmap_size,
            sigma=float(config.sigma),
            quantize=config.quantize,
            siamese=bool(config.siamese),
            decoder=config.decoder,
            window=int(config.window),
            temperature=float(config.temperature),
            augment=augment.AugmentConfig.from_config(config.augment),
            flip_permutation=layouts.get_layout(num_landmarks).flip_permutation,
        )


class TrainState(train_state.TrainState):
    batch_stats: Any
    # The augmentation's base key, key(config.seed) from create_train_state: a value, not a
    # constant of the compiled step, so runs that differ only in their seed share a compilation.
    key: Any = None


def create_model(config, num_landmarks: int) -> FAN:
    return FAN(
        num_stacks=config.model.num_stacks,
        num_landmarks=num_landmarks,
        width=config.model.width,
        depth=config.model.depth,
        dtype=jnp.dtype(config.dtype),
    )


def create_train_state(rng, config, model: FAN, steps_per_epoch: int) -> TrainState:
    """Initial variables from rng, which also seeds the augmentation (training passes key(seed))."""
    images = jnp.zeros((1, config.image_size, config.image_size, 3), jnp.float32)
    # One compiled init: eager Flax init compiles each op apart (16 s for a tiny FAN).
    variables = jax.jit(functools.partial(model.init, train=False))(rng, images)
    tx = optimizer.optimizer(config, steps_per_epoch)
    return TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        tx=tx,
        key=rng,
    )


def train_step(state: TrainState, batch, cfg: StepConfig):
    """One optimiser step on a global batch; the augmentation's randomness is (seed, step)'s."""
    if state.key is None:
        raise ValueError("the TrainState has no key: make it with create_train_state")
    key = jax.random.fold_in(state.key, state.step)
    images = batch["image"].astype(jnp.float32) / 255.0
    num_views = 2 if cfg.siamese else 1
    views = [
        augment.random_views(
            k, images, batch["landmarks"], batch["visible"], cfg.augment, cfg.flip_permutation
        )
        for k in jax.random.split(key, num_views)
    ]
    inputs = jnp.concatenate([v.images for v in views])
    targets = functools.partial(
        losses.target_heatmaps,
        stride=cfg.stride,
        heatmap_size=cfg.heatmap_size,
        sigma=cfg.sigma,
        quantize=cfg.quantize,
    )

    def loss_fn(params):
        outputs, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats},
            inputs,
            train=True,
            mutable=["batch_stats"],
        )
        if cfg.siamese:
            loss = losses.siamese_loss(
                outputs,
                targets(batch["landmarks"]),
                batch["visible"],
                jnp.stack([v.matrices for v in views]),
                jnp.stack([v.flipped for v in views]),
                cfg.stride,
                cfg.flip_permutation,
            )
        else:
            target = targets(views[0].landmarks)
            loss = sum(losses.masked_l2(out, target, views[0].visible) for out in outputs)
        return loss, updates["batch_stats"]

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    grad_norm = optax.tree.norm(grads)
    finite = finite_checks(loss, grad_norm, new_state)
    # A non-finite step leaves the state as it was: nothing non-finite can be saved. One
    # conditional, not a select per leaf (hundreds of kernels to compile).
    state = jax.lax.cond(reporting.all_finite(finite), lambda: new_state, lambda: state)
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


class StepFns(NamedTuple):
    """The jitted steps over a data-parallel mesh, as training runs them."""

    init: Callable  # rng -> a fresh TrainState, replicated
    train: Callable  # (state, global batch) -> (state, metrics); the state is donated
    eval: Callable  # (state, global batch) -> points in original image pixels


_STEP_FNS: dict = {}  # (config without its seed, model, cfg, dp, steps per epoch) -> StepFns


def make_step_fns(config, model: FAN, cfg: StepConfig, dp, steps_per_epoch: int) -> StepFns:
    """create_train_state, train_step and eval_step jitted with the mesh's shardings.

    Cached: the runs of one process that differ at most in their seed (a resume, an ablation's
    seeds, the tests) trace and compile the steps once.
    """
    unseeded = config.copy_and_resolve_references()
    unseeded.seed = 0  # the state carries it
    key = (unseeded.to_json_best_effort(sort_keys=True), model, cfg, dp, steps_per_epoch)
    if key not in _STEP_FNS:
        _STEP_FNS[key] = _jitted_steps(config, model, cfg, dp, steps_per_epoch)
    return _STEP_FNS[key]


def _jitted_steps(config, model: FAN, cfg: StepConfig, dp, steps_per_epoch: int) -> StepFns:
    init = jax.jit(
        lambda rng: create_train_state(rng, config, model, steps_per_epoch),
        out_shardings=dp.replicated,
    )
    train = jax.jit(
        functools.partial(train_step, cfg=cfg),
        in_shardings=(dp.replicated, dp.data),
        out_shardings=(dp.replicated, dp.replicated),
        donate_argnums=0,
    )
    evaluate = jax.jit(
        functools.partial(eval_step, cfg=cfg),
        in_shardings=(dp.replicated, dp.data),
        out_shardings=dp.data,
    )
    return StepFns(init, train, evaluate)


# --- the training shell: everything below has side effects ------------------------------------


def compile_with_input(train_fn, state, builder, config, sharding, start: int):
    """(train_fn compiled, device batches from step start + 1), the crops made meanwhile."""
    put = functools.partial(mesh.to_global, keys=TRAIN_KEYS, sharding=sharding)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        shapes = input_pipeline.train_batch_shapes(builder, config, sharding)
        compiling = pool.submit(lambda: train_fn.lower(state, shapes).compile())
        batches = input_pipeline.prefetch_to_device(
            input_pipeline.train_input(builder, config, start), put
        )
        return compiling.result(), batches
    finally:
        pool.shutdown(wait=False)  # a SIGTERM here leaves without waiting for the compiler


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, stop_at_step: int | None = None
) -> dict:
    """Trains (resuming from workdir's latest checkpoint), evaluates, writes eval_results.json.

    stop_at_step: checkpoint there and return {} without evaluating, as a preempted run would.
    A SIGTERM raises preemption.Preempted: at once before the first step, after a checkpoint
    at the next step while training (on every process of a multi-host run), between batches
    during evaluation. A rerun with the same workdir ends as an uninterrupted run would.
    """
    config_loader.validate(config, jax.device_count())
    with preemption.sigterm_stops_training() as stop:
        return _train_and_evaluate(config, workdir, stop_at_step, stop)


def _restore_or_initialise(state: TrainState, ckpt_dir, model: FAN, config) -> tuple:
    """(state, start step): the latest checkpoint's, else config.init_checkpoint's variables."""
    start = checkpoints.latest_step(ckpt_dir) or 0
    if start:
        checkpoints.check_model_config(ckpt_dir, model.config())
        train_state = {"step": state.step, "opt_state": state.opt_state}
        variables, extra = checkpoints.restore_training(ckpt_dir, variables_of(state), train_state)
        state = state.replace(step=extra["step"], opt_state=extra["opt_state"], **variables)
        logging.info("resumed from step %d in %s", start, ckpt_dir)
    elif config.init_checkpoint:  # another run's variables, a fresh optimiser
        checkpoints.check_model_config(config.init_checkpoint, model.config())
        _, variables = checkpoints.restore(config.init_checkpoint, target=variables_of(state))
        state = state.replace(**variables)
        logging.info("initialised from %s", config.init_checkpoint)
    return state, start


@dataclasses.dataclass
class _Run:
    """The side effects of one run: checkpoints, evaluations, logs; the loop stays a loop."""

    config: ml_collections.ConfigDict
    workdir: Any  # epath.Path
    model: FAN
    eval_fn: Any  # (state, global batch) -> points
    eval_builder: Any
    dp: mesh.DataParallel
    stop: preemption.Stop
    reporter: reporting.Reporter
    guard: reporting.NonFiniteGuard = dataclasses.field(default_factory=reporting.NonFiniteGuard)

    def save(self, state: TrainState, step: int) -> None:
        self.guard.check(variables_of(state))  # never checkpoint past a non-finite step
        checkpoints.save(
            self.workdir / "checkpoints",
            step,
            variables_of(state),
            self.model.config(),
            max_to_keep=self.config.keep_checkpoints,
            train_state={"step": state.step, "opt_state": state.opt_state},
        )

    def log(self, state: TrainState, step: int, step_metrics: dict) -> None:
        self.guard.check(variables_of(state))
        values = {k: float(step_metrics[k]) for k in ("loss", "grad_norm")}
        values.update(self.reporter.progress(step, values["loss"]))
        self.reporter.scalars(step, values)

    def evaluate(self, state: TrainState, step: int) -> dict:
        """Every eval split scored, logged and written to eval_results.json."""

        def predict(batch):
            self.stop.check("during evaluation")  # a SIGTERM need not wait for the end
            return {"points": self.eval_fn(state, batch)}

        config = self.config
        results = {
            split: scoring.evaluate(predict, self.eval_builder, split, config, self.dp)
            for split in config.eval_splits
        }
        self.reporter.scalars(step, {f"eval/{s}/nme": r["nme"] for s, r in results.items()})
        if jax.process_index() == 0:
            (self.workdir / "eval_results.json").write_text(
                json.dumps({"step": step, "dataset": config.dataset, "results": results}, indent=2)
            )
        logging.info("eval at step %d: %s", step, json.dumps(results))
        return results


def _train(run: _Run, train_fn, state, batches, start: int, total: int, stop_at_step) -> tuple:
    """Steps start + 1 .. total: (state, whether it reached total rather than stopped)."""
    config = run.config
    previous = None
    for step in range(start + 1, total + 1):
        state, step_metrics = train_fn(state, next(batches))
        # At most this step in flight: a SIGTERM waits for one step, not a queue of them.
        jax.block_until_ready(previous)
        previous = step_metrics["loss"]
        run.guard.note(step, step_metrics)
        if step % config.log_every_steps == 0 or step == total:
            run.log(state, step, step_metrics)
        preempted = run.stop(step)
        if (preempted or step == stop_at_step) and step != total:
            run.save(state, step)
            logging.info("stopped at step %d; rerun with the same workdir to continue", step)
            if preempted:
                raise preemption.Preempted(f"stopped at step {step}")
            return state, False
        # Evaluate before the checkpoint: one stopped mid-evaluation resumes before it, redoes it.
        if step % config.eval_every_steps == 0 and step != total:
            run.evaluate(state, step)
        if step % config.checkpoint_every_steps == 0 and step != total:
            run.save(state, step)
    return state, True


def _train_and_evaluate(config, workdir: str, stop_at_step: int | None, stop) -> dict:
    workdir = paths.path(workdir)  # checked once: local made absolute, remote clients present
    workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:  # predict and evaluate read the crop and decoder settings here
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    builder, eval_builder, num_landmarks = input_pipeline.load_builders(config)
    stop.check(preemption.BEFORE_TRAINING)
    model = create_model(config, num_landmarks)
    dp = mesh.data_parallel(jax.devices())
    per_epoch = input_pipeline.steps_per_epoch(builder, config.train_split, config.batch_size)
    total = optimizer.num_train_steps(config, per_epoch)
    fns = make_step_fns(config, model, StepConfig.from_config(config, num_landmarks), dp, per_epoch)
    state = fns.init(jax.random.key(config.seed))
    state, start = _restore_or_initialise(state, workdir / "checkpoints", model, config)
    reporter = reporting.Reporter(workdir, total, config.batch_size)
    run = _Run(config, workdir, model, fns.eval, eval_builder, dp, stop, reporter)
    train_fn, batches = fns.train, None
    if start < total:  # a run stopped in its final evaluation only evaluates
        train_fn, batches = compile_with_input(train_fn, state, builder, config, dp.data, start)
    reporter.forget_after(start)
    reporter.progress(start, float("nan"))
    stop.check(preemption.BEFORE_TRAINING)
    stop.training = True  # from here a SIGTERM waits for the step and its checkpoint
    logging.info("training from step %d to %d", start, total)
    state, finished = _train(run, train_fn, state, batches, start, total, stop_at_step)
    if not finished:
        return {}
    if start < total or checkpoints.latest_step(workdir / "checkpoints") != total:
        run.save(state, total)
    return run.evaluate(state, total)
