"""Throughput of training, evaluation, decoding and the input pipeline: one JSON line per measurement.

    python -m sphm_jax.benchmark --config configs/default.py --what all [--reference torch]

Every measurement warms up (compilation is excluded and reported as
`compile_s`), times `--repeats` calls and reports the median. `images_per_s`
counts training samples: a Siamese sample is one image seen in two views.
Training, evaluation and decoding run on synthetic device-resident batches
(the step alone); `--what input` times the host pipeline on the config's
dataset. With `--reference torch` the same work also runs in PyTorch on the
same device: face-alignment's FAN, kornia warps, Adam (`torch_reference.py`),
and face-alignment's `get_preds_fromhm` for decoding.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sphm_jax import config_files, export, heatmaps, train, xla_cpu

WHAT = ("train", "eval", "decode", "input")  # "all"; "loop" (minutes: whole epochs) on request
# Dense peak TFLOP/s per device: (device kind substring, bfloat16, float32 as the matmul units run it).
# float32 on GPUs runs as TF32 under JAX's and torch-AMP-free default precision; TPUs run it in bf16 passes.
PEAK_TFLOPS = (
    ("H100 PCIe", 756.0, 378.0),
    ("H100", 989.4, 494.7),
    ("H200", 989.4, 494.7),
    ("A100", 312.0, 156.0),
    ("TPU v4", 275.0, 275.0),
    ("TPU v5 lite", 197.0, 197.0),
    ("TPU v5e", 197.0, 197.0),
    ("TPU v5p", 459.0, 459.0),
    ("TPU v6 lite", 918.0, 918.0),
)

FLAGS = flags.FLAGS
config_files.DEFINE_config_file("config", None, "Training configuration.", lock_config=True)
flags.DEFINE_enum(
    "what",
    "all",
    WHAT + ("loop", "export", "all", "sweep"),
    "What to time (sweep: only --sweep; export: sphm_jax.export's artefacts, minutes).",
)
flags.DEFINE_enum("reference", "none", ("none", "torch"), "Also time the PyTorch reference.")
flags.DEFINE_integer("repeats", 5, "Timed calls per measurement; the median is reported.")
flags.DEFINE_integer("num_landmarks", 68, "Landmarks of the synthetic batches.")
flags.DEFINE_integer("decode_faces", 64, "Faces per decode call (heatmaps of config.heatmap_size).")
flags.DEFINE_integer("input_batches", 20, "Batches per timed repeat of the input pipeline.")
flags.DEFINE_integer(
    "loop_steps", 0, "Steps of the timed training loop (--what loop); 0: two epochs and a bit."
)
flags.DEFINE_multi_string(
    "sweep",
    [],
    "FIELD=V1,V2,...: time the training step at each value of a config field, in turns "
    "(a scaling table); image_size carries heatmap_size along. Repeatable.",
)
flags.DEFINE_bool("torch_channels_last", None, "Reference in channels-last (default: on CUDA).")
flags.mark_flags_as_required(["config"])


def peak_tflops(device_kind: str, dtype: str) -> float | None:
    """The device's dense peak for dtype, or None where unknown (CPUs)."""
    for name, bf16, f32 in PEAK_TFLOPS:
        if name.lower() in device_kind.lower():
            return bf16 if dtype == "bfloat16" else f32
    return None


def interleaved_medians(calls, repeats: int) -> list[float]:
    """Median wall time of each `call()` (each blocks until its work is done) after a warm-up.

    The calls take turns, so a change in the machine's load hits all of them alike.
    """
    for call in calls:
        call()
    times = [[] for _ in calls]
    for _ in range(repeats):
        for call, spent in zip(calls, times):
            start = time.perf_counter()
            call()
            spent.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def synthetic_batch(config, num_landmarks: int, batch_size: int, seed: int = 0) -> dict:
    """A random training/eval batch: uint8 crops, landmarks inside the face area, all visible."""
    rng = np.random.default_rng(seed)
    size = config.image_size
    return {
        "image": rng.integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8),
        "landmarks": rng.uniform(0.2 * size, 0.8 * size, (batch_size, num_landmarks, 2)).astype(
            np.float32
        ),
        "visible": np.ones((batch_size, num_landmarks), np.float32),
        "crop": np.tile(np.eye(2, 3, dtype=np.float32), (batch_size, 1, 1)),
    }


def record(what: str, impl: str, config, seconds: float, batch_size: int, **extra) -> dict:
    device = jax.devices()[0] if impl == "jax" else extra.pop("torch_device")
    kind = device if isinstance(device, str) else device.device_kind
    # JAX steps split the batch over every device; decode, input and the reference use one.
    num_devices = jax.device_count() if impl == "jax" and what in ("train", "eval") else 1
    return {
        "what": what,
        "impl": impl,
        "images_per_s": batch_size / seconds,
        "images_per_s_per_device": batch_size / seconds / num_devices,
        "batch_size": batch_size,
        "step_ms": 1e3 * seconds,
        "device": kind,
        "num_devices": num_devices,
        "image_size": config.image_size,
        "num_stacks": config.model.num_stacks,
        "width": config.model.width,
        "dtype": config.dtype,
        # Timings on a shared machine mean little without it.
        "load_avg_1min": os.getloadavg()[0],
        # Which CPU and which XLA paths (the flags XLA read) the figure belongs to.
        "cpu": xla_cpu.cpu_model(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        **extra,
    }


def flops_fields(flops_per_step: float | None, seconds: float, device_kind: str, dtype: str):
    """Achieved TFLOP/s per device and its fraction of the peak (None where unknown)."""
    if not flops_per_step:
        return {"tflops": None, "peak_tflops": None, "peak_fraction": None}
    achieved = flops_per_step / seconds / 1e12
    peak = peak_tflops(device_kind, dtype)
    return {
        "tflops": achieved,
        "peak_tflops": peak,
        "peak_fraction": achieved / peak if peak else None,
    }


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
    """(StepConfig, a replicated fresh state, one sharded synthetic batch, data and replicated
    shardings): what train_and_evaluate hands its jitted steps."""
    cfg = train.StepConfig.from_config(config, num_landmarks)
    model = train.create_model(config, num_landmarks)
    mesh = train.make_mesh(jax.devices())
    data, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    init = jax.jit(
        lambda rng: train.create_train_state(rng, config, model, 1000), out_shardings=replicated
    )
    state = init(jax.random.key(config.seed))
    batch = synthetic_batch(config, num_landmarks, config.batch_size)
    return cfg, state, train.to_global(batch, keys, data), data, replicated


def jax_train(config, num_landmarks: int):
    """The training step of train_and_evaluate (donated state, sharded batch) on one batch.

    Returns (call, to_record): one blocking step, and seconds -> the JSON record.
    """
    cfg, state, batch, data, replicated = _step_inputs(config, num_landmarks, train.TRAIN_KEYS)
    step = jax.jit(
        functools.partial(train.train_step, cfg=cfg),
        in_shardings=(replicated, data),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )
    compiled, compile_s = _compile(step, state, batch)
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
    cfg, state, batch, data, replicated = _step_inputs(config, num_landmarks, train.EVAL_KEYS)
    step = jax.jit(
        functools.partial(train.eval_step, cfg=cfg),
        in_shardings=(replicated, data),
        out_shardings=data,
    )
    compiled, compile_s = _compile(step, state, batch)
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


def decode_heatmaps(config, num_landmarks: int, faces: int) -> np.ndarray:
    """Network-like maps: a Gaussian at a random point per landmark plus a little noise."""
    rng = np.random.default_rng(0)
    size = config.heatmap_size
    points = rng.uniform(2.0, size - 3.0, (faces, num_landmarks, 2)).astype(np.float32)
    maps = np.asarray(heatmaps.encode(points, (size, size), config.sigma))
    return maps + rng.normal(0.0, 0.01, maps.shape).astype(np.float32)


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
    builder = train.load_builder(config.dataset, config)
    iterator = train.train_input(builder, config)
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

    builder = train.load_builder(config.dataset, config)
    per_epoch = train.input_pipeline.steps_per_epoch(builder, config.train_split, config.batch_size)
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


# --- the PyTorch reference (optional dependency) ---------------------------------------------


def _torch_device():
    import torch  # pylint: disable=g-import-not-at-top

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _torch_device_name(device) -> str:
    import torch  # pylint: disable=g-import-not-at-top

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def _torch_sync(device):
    import torch  # pylint: disable=g-import-not-at-top

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def torch_train(config, num_landmarks: int, flops_per_step, channels_last):
    """torch_reference.TrainStep on the same batch; AMP (bfloat16) when config.dtype is bfloat16.

    Returns (call, to_record) as jax_train does.
    """
    import torch  # pylint: disable=g-import-not-at-top

    from sphm_jax import torch_reference  # pylint: disable=g-import-not-at-top

    device = _torch_device()
    if channels_last is None:
        channels_last = device.type == "cuda"
    cfg = train.StepConfig.from_config(config, num_landmarks)
    torch.manual_seed(config.seed)
    net = torch_reference.build_fan(
        config.model.num_stacks, num_landmarks, config.model.width, config.model.depth
    )
    amp = config.dtype == "bfloat16"
    step = torch_reference.TrainStep(
        net,
        torch_reference.step_description(cfg),
        config.learning_rate,
        device,
        amp,
        channels_last,
    )
    batch = synthetic_batch(config, num_landmarks, config.batch_size)
    images = torch.from_numpy(batch["image"].transpose(0, 3, 1, 2).copy()).to(device)
    landmarks = torch.from_numpy(batch["landmarks"]).to(device)
    visible = torch.from_numpy(batch["visible"]).to(device)

    def call():
        step(images, landmarks, visible)
        _torch_sync(device)

    start = time.perf_counter()
    call()  # first call: allocations, cuDNN autotuning; the counterpart of compile_s
    first = time.perf_counter() - start
    name = _torch_device_name(device)
    per_device = flops_per_step * jax.device_count() if flops_per_step else None

    def to_record(seconds):
        return record(
            "train",
            "torch",
            config,
            seconds,
            config.batch_size,
            torch_device=name,
            siamese=bool(config.siamese),
            amp=amp,
            channels_last=bool(channels_last),
            torch_threads=torch.get_num_threads(),
            compile_s=first,
            flops_per_step=per_device,
            **flops_fields(per_device, seconds, name, config.dtype),
        )

    return call, to_record


def torch_eval(config, num_landmarks: int, channels_last):
    """The reference's forward pass (eval mode, no autograd) on the same batch.

    Returns (call, to_record) as jax_train does.
    """
    import torch  # pylint: disable=g-import-not-at-top

    from sphm_jax import torch_reference  # pylint: disable=g-import-not-at-top

    device = _torch_device()
    if channels_last is None:
        channels_last = device.type == "cuda"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(config.seed)
    net = torch_reference.build_fan(
        config.model.num_stacks, num_landmarks, config.model.width, config.model.depth
    )
    net = net.to(device=device, memory_format=memory_format).eval()
    amp = config.dtype == "bfloat16"
    batch = synthetic_batch(config, num_landmarks, config.batch_size)
    images = torch.from_numpy(batch["image"].transpose(0, 3, 1, 2).copy()).to(device)

    def call():
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=amp):
            net((images.float() / 255.0).contiguous(memory_format=memory_format))
        _torch_sync(device)

    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    to_record = functools.partial(
        record,
        "eval",
        "torch",
        config,
        batch_size=config.batch_size,
        torch_device=_torch_device_name(device),
        amp=amp,
        channels_last=bool(channels_last),
        torch_threads=torch.get_num_threads(),
        compile_s=first,
    )
    return call, to_record


def torch_decode(config, maps: np.ndarray):
    """face-alignment's get_preds_fromhm (numpy argmax + numba +-0.25) on the same maps, NCHW.

    Returns (call, to_record) as jax_train does.
    """
    from face_alignment.utils import get_preds_fromhm  # pylint: disable=g-import-not-at-top

    nchw = np.ascontiguousarray(maps.transpose(0, 3, 1, 2))
    start = time.perf_counter()
    get_preds_fromhm(nchw)  # numba compiles on the first call
    first = time.perf_counter() - start
    to_record = functools.partial(
        record,
        "decode",
        "torch",
        config,
        batch_size=maps.shape[0],
        torch_device="cpu",
        method="face_alignment.get_preds_fromhm",
        num_landmarks=maps.shape[-1],
        heatmap_size=maps.shape[1],
        compile_s=first,
    )
    return functools.partial(get_preds_fromhm, nchw), to_record


def _ratio(a, b):
    return a / b if a and b else None


def summary(records: list[dict]) -> dict:
    """The ratios the targets are stated in, from the records of one run."""

    def rate(what, impl, **match):
        for r in records:
            if (
                r["what"] == what
                and r["impl"] == impl
                and all(r.get(k) == v for k, v in match.items())
            ):
                return r["images_per_s"]
        return None

    cfg_decoder = next((r["method"] for r in records if r["what"] == "decode"), None)
    return {
        "what": "summary",
        "train_jax_over_torch": _ratio(rate("train", "jax"), rate("train", "torch")),
        "decode_jax_over_torch": _ratio(
            rate("decode", "jax", method=cfg_decoder), rate("decode", "torch")
        ),
        "decode_time_over_max": _ratio(
            rate("decode", "jax", method="max"), rate("decode", "jax", method=cfg_decoder)
        ),
        "input_over_train": _ratio(rate("input", "jax"), rate("train", "jax")),
        "loop_over_train": _ratio(rate("loop", "jax"), rate("train", "jax")),
        "eval_jax_over_torch": _ratio(rate("eval", "jax"), rate("eval", "torch")),
    }


def parse_sweep(text: str) -> tuple[str, list]:
    """'model.num_stacks=1,2,4' -> ('model.num_stacks', [1, 2, 4])."""
    field, sep, values = text.partition("=")
    if not sep or not values:
        raise ValueError(f"--sweep wants FIELD=V1,V2,..., got {text!r}")
    return field, [json.loads(v) for v in values.split(",")]


def swept(config, field: str, value):
    """A copy of config with field (dotted) set to value; heatmap_size follows image_size."""
    config = config.copy_and_resolve_references()
    with config.unlocked():
        if field == "image_size":
            config.heatmap_size = value * config.heatmap_size // config.image_size
        *parents, leaf = field.split(".")
        node = config
        for name in parents:
            node = node[name]
        if leaf not in node:
            raise ValueError(f"--sweep: the config has no field {field!r}")
        node[leaf] = value
    return config


def _measured(setups, repeats: int):
    """Records of [(call, to_record)], their calls timed side by side."""
    seconds = interleaved_medians([call for call, _ in setups], repeats)
    return [to_record(seconds=t) for (_, to_record), t in zip(setups, seconds)]


def run(config, what: str, reference: str, repeats: int, **options):
    """Yields every measurement of `what` ("all": each), jax and, on request, torch side by side."""
    whats = {"all": WHAT, "sweep": ()}.get(what, (what,))
    k = options.get("num_landmarks", 68)
    if "input" in whats:
        yield jax_input(config, repeats, options.get("input_batches", 20))
    if "decode" in whats:
        maps = decode_heatmaps(config, k, options.get("decode_faces", 64))
        setups = jax_decode(config, maps)
        if reference == "torch":
            setups.append(torch_decode(config, maps))
        yield from _measured(setups, repeats)
    if "eval" in whats:
        setups = [jax_eval(config, k)]
        if reference == "torch":
            setups.append(torch_eval(config, k, options.get("torch_channels_last")))
        yield from _measured(setups, repeats)
    if "loop" in whats:
        yield jax_loop(config, options.get("loop_steps", 0))
    if "export" in whats:
        yield from export.benchmark_config(config, k, repeats)
    if "train" in whats:
        setups = [jax_train(config, k)]
        if reference == "torch":
            flops = setups[0][1](seconds=1.0)["flops_per_step"]
            channels_last = options.get("torch_channels_last")
            setups.append(torch_train(config, k, flops, channels_last))
        yield from _measured(setups, repeats)
    for text in options.get("sweep", ()):
        field, values = parse_sweep(text)
        setups = [jax_train(swept(config, field, v), k) for v in values]
        for r, v in zip(_measured(setups, repeats), values):
            yield {**r, "sweep": field, "value": v}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    # tf.data only feeds the host: keep TensorFlow off the accelerators JAX uses.
    tf.config.set_visible_devices([], "GPU")
    records = []
    for r in run(
        FLAGS.config,
        FLAGS.what,
        FLAGS.reference,
        FLAGS.repeats,
        num_landmarks=FLAGS.num_landmarks,
        decode_faces=FLAGS.decode_faces,
        input_batches=FLAGS.input_batches,
        loop_steps=FLAGS.loop_steps,
        torch_channels_last=FLAGS.torch_channels_last,
        sweep=FLAGS.sweep,
    ):
        records.append(r)
        print(json.dumps(r), flush=True)
    ratios = summary(records)
    if any(v is not None for k, v in ratios.items() if k != "what"):
        print(json.dumps(ratios), flush=True)


if __name__ == "__main__":
    app.run(main)
