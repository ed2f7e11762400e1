"""The JAX measurements: the training and eval steps of train_and_evaluate, decoding, the input
pipeline and the whole training loop.

Each setup returns (call, to_record): one blocking call, and seconds -> the JSON record.
"""

from __future__ import annotations

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from sphm_jax import heatmaps
from sphm_jax.benchmark.records import (
    flops_fields,
    interleaved_medians,
    record,
    synthetic_batch,
)
from sphm_jax.data import input_pipeline
from sphm_jax.training import mesh, scoring, train, xla_cpu


def _cost_flops(compiled) -> float | None:
    """XLA's count of floating-point operations of one call, per device (a multiply-add is 2)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return float(analysis["flops"]) if analysis and "flops" in analysis else None


def _compile(fn, *args):
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start


def _step_inputs(config, num_landmarks: int, keys):
    """(the jitted steps of train_and_evaluate, a fresh replicated state, one sharded batch)."""
    cfg = train.StepConfig.from_config(config, num_landmarks)
    model = train.create_model(config, num_landmarks)
    dp = mesh.data_parallel(jax.devices())
    fns = train.make_step_fns(config, model, cfg, dp, 1000)
    state = fns.init(jax.random.key(config.seed))
    batch = synthetic_batch(config, num_landmarks, config.batch_size)
    return fns, state, mesh.to_global(batch, keys, dp.data)


def jax_train(config, num_landmarks: int):
    """The training step of train_and_evaluate (donated state, sharded batch) on one batch.

    Returns (call, to_record): one blocking step, and seconds -> the JSON record.
    """
    fns, state, batch = _step_inputs(config, num_landmarks, train.TRAIN_KEYS)
    compiled, compile_s = _compile(fns.train, state, batch)
    flops = _cost_flops(compiled)
    ynn = xla_cpu.ynn_fusion_kinds(compiled.as_text())
    holder = [state]

    def call():
        holder[0], metrics = compiled(holder[0], batch)
        jax.block_until_ready(metrics)

    def to_record(seconds):
        return record(
            "train",
            "jax",
            config,
            seconds,
            config.batch_size,
            siamese=bool(config.siamese),
            compile_s=compile_s,
            ynn_fusions=ynn,
            flops_per_step=flops,
            **flops_fields(flops, seconds, jax.devices()[0].device_kind, config.dtype),
        )

    return call, to_record


def jax_eval(config, num_landmarks: int):
    """eval_step: network, decoder and the map back to image pixels, on one batch.

    Returns (call, to_record) as jax_train does.
    """
    fns, state, batch = _step_inputs(config, num_landmarks, scoring.EVAL_KEYS)
    compiled, compile_s = _compile(fns.eval, state, batch)
    flops = _cost_flops(compiled)
    to_record = functools.partial(
        _eval_record, config, compile_s, flops, xla_cpu.ynn_fusion_kinds(compiled.as_text())
    )
    return functools.partial(_call_blocking, compiled, state, batch), to_record


def _eval_record(config, compile_s, flops, ynn, seconds):
    return record(
        "eval",
        "jax",
        config,
        seconds,
        config.batch_size,
        compile_s=compile_s,
        ynn_fusions=ynn,
        flops_per_image=flops * jax.device_count() / config.batch_size if flops else None,
        **flops_fields(flops, seconds, jax.devices()[0].device_kind, config.dtype),
    )


def _call_blocking(fn, *args):
    return jax.block_until_ready(fn(*args))


def jax_decode(config, maps: np.ndarray) -> list:
    """decode (the config's method) on every map in one jitted call, and two yardsticks on the same
    maps: `max` (one jnp.max pass, the memory floor) and `argmax` (a plain jnp.argmax).

    Returns [(call, to_record)] per method.
    """
    maps = jnp.asarray(maps)
    methods = {
        config.decoder: jax.jit(
            lambda m: heatmaps.decode(m, config.decoder, config.window, config.temperature)
        ),
        "max": jax.jit(lambda m: jnp.max(m, axis=(1, 2))),
        "argmax": jax.jit(lambda m: jnp.argmax(m.reshape(m.shape[0], -1, m.shape[-1]), axis=1)),
    }
    out = []
    for method, fn in methods.items():
        compiled, compile_s = _compile(fn, maps)
        to_record = functools.partial(
            record,
            "decode",
            "jax",
            config,
            batch_size=maps.shape[0],
            method=method,
            num_landmarks=maps.shape[-1],
            heatmap_size=maps.shape[1],
            compile_s=compile_s,
        )
        out.append((functools.partial(_call_blocking, compiled, maps), to_record))
    return out


def jax_input(config, repeats: int, batches: int) -> dict:
    """Host pipeline of the config's dataset: batches of crops made once (startup: making them)."""
    builder = input_pipeline.load_builder(config.dataset, config)
    iterator = input_pipeline.train_input(builder, config)
    start = time.perf_counter()
    next(iterator)  # reads, decodes, crops and resizes the whole split once
    startup = time.perf_counter() - start

    def call():
        for _ in range(batches):
            next(iterator)

    seconds = interleaved_medians([call], repeats)[0] / batches
    return record(
        "input",
        "jax",
        config,
        seconds,
        config.batch_size // jax.process_count(),
        dataset=config.dataset,
        compile_s=startup,
    )


def jax_loop(config, steps: int) -> dict:
    """train_and_evaluate's loop as it trains (input, step, metrics, checkpoints), over epoch ends.

    Runs `steps` steps (0: two epochs and ten steps) in a temporary workdir,
    logging every 10, and reads the images/s of each logged interval. The crops
    and the compilation come before the first logged step; the first interval
    (first calls, warm-up) is left out of the rate and reported as `compile_s`.
    """
    import tempfile  # pylint: disable=g-import-not-at-top

    builder = input_pipeline.load_builder(config.dataset, config)
    per_epoch = input_pipeline.steps_per_epoch(builder, config.train_split, config.batch_size)
    steps = steps or 2 * per_epoch + 10
    config = config.copy_and_resolve_references()
    with config.unlocked():
        config.num_train_steps, config.log_every_steps = steps + 1, 10
    with tempfile.TemporaryDirectory() as workdir:
        train.train_and_evaluate(config, workdir, stop_at_step=steps)  # stops before evaluating
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            logged = [r for r in map(json.loads, f) if "images_per_s" in r]
    first, steady = logged[0], logged[1:]
    seconds = sum(10 * config.batch_size / r["images_per_s"] for r in steady)
    return record(
        "loop",
        "jax",
        config,
        seconds / (10 * len(steady)),
        config.batch_size,
        siamese=bool(config.siamese),
        compile_s=10 * config.batch_size / first["images_per_s"],  # steps 1-10, warm-up
        steps=steps,
        steps_per_epoch=per_epoch,
        checkpoint_every_steps=config.checkpoint_every_steps,
        interval_images_per_s=[round(r["images_per_s"], 2) for r in steady],
        interval_end_steps=[r["step"] for r in steady],
    )
