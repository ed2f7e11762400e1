"""Host input pipeline: any landmark builder -> cropped, resized, per-process batches.

Per example (tf.data, on the host): decode, crop a square around the box,
resize to `image_size`. Augmentation and heatmaps happen later on the device.

Crop rule, the same for every dataset: the square is centred on the box
centre, its side is `crop_scale` times the longer box side. With the tight
landmark box (300W ground-truth boxes, COFW-68, Menpo, synthetic_faces) the
default 256 / 220 makes the face about 220 px of a 256 crop, as in §5.1.
Only configs/default.py sets `crop_scale`: every shipped config keeps it, the
looser boxes of WFLW, COFW and AFLW included; a config may set its own.

Batches are numpy dicts of the process's share of the global batch:
  image uint8 [b, S, S, 3], landmarks float32 [b, K, 2] in crop pixels,
  visible float32 [b, K], crop float32 [b, 2, 3] (original image -> crop; its
  inverse maps predictions back), bbox, image_id, mask float32 [b] (0 for the
  padding of the evaluation's last batches), and the builder's metadata.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import importlib.util
from collections.abc import Callable, Iterator

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils

from sphm_jax import geometry


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


def load_builders(config) -> tuple:
    """(training builder, evaluation builder, number of landmarks), checked to agree."""
    builder = load_builder(config.dataset, config)
    eval_builder = builder
    if config.eval_dataset:
        eval_builder = load_builder(config.eval_dataset, config)
    num_landmarks = builder.info.features["landmarks"].shape[0]
    if eval_builder.info.features["landmarks"].shape[0] != num_landmarks:
        raise ValueError(
            f"eval_dataset {config.eval_dataset} has a different number of landmarks "
            f"than dataset {config.dataset}"
        )
    return builder, eval_builder, num_landmarks


def box_square(bbox, crop_scale):
    """(centre, side) of the square geometry.box_crop cuts around a box (tf twin)."""
    bbox = tf.cast(bbox, tf.float32)
    center = 0.5 * (bbox[:2] + bbox[2:])
    return center, crop_scale * tf.reduce_max(bbox[2:] - bbox[:2])


def crop_matrix(center, side, size):
    """The affine (original -> crop) of a square of `side` at `center` resized to size x size
    (tf twin of geometry.crop)."""
    scale = size / side
    mid = (size - 1) / 2.0
    zero = tf.zeros_like(scale)
    return tf.stack(
        [
            tf.stack([scale, zero, mid - scale * center[0]]),
            tf.stack([zero, scale, mid - scale * center[1]]),
        ]
    )


def crop_and_resize(image, center, side, size: int):
    """Bilinear crop of a square (zeros outside), antialiased when it shrinks the image (tf).

    The image is first resized by the crop's own scale (tf.image.resize keeps
    pixel centres: x' = (x + 0.5) * s - 0.5), then sampled pixel by pixel, so
    the result is exactly `crop_matrix(center, side, size)` applied to it.
    """
    image = tf.cast(image, tf.float32)
    hw = tf.cast(tf.shape(image)[:2], tf.float32)
    step = side / size  # source pixels per output pixel
    new_hw = tf.maximum(tf.round(hw / tf.maximum(step, 1.0)), 1.0)
    image = tf.image.resize(image, tf.cast(new_hw, tf.int32), antialias=True)
    s = new_hw / hw  # (sy, sx) of the pre-resize
    cy, cx = (center[1] + 0.5) * s[0] - 0.5, (center[0] + 0.5) * s[1] - 0.5
    half_y, half_x = (size - 1) / 2.0 * step * s[0], (size - 1) / 2.0 * step * s[1]
    # crop_and_resize reads normalised corners as y * (H - 1): pixel centres at both ends.
    denom = tf.maximum(new_hw - 1.0, 1.0)
    box = tf.stack(
        [
            (cy - half_y) / denom[0],
            (cx - half_x) / denom[1],
            (cy + half_y) / denom[0],
            (cx + half_x) / denom[1],
        ]
    )
    out = tf.image.crop_and_resize(
        image[None], box[None], [0], [size, size], extrapolation_value=0.0
    )[0]
    return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)


def transform_points(points, matrix):
    """Applies a 2x3 affine to points [K, 2] (tf)."""
    return tf.linalg.matmul(points, matrix[:, :2], transpose_b=True) + matrix[:, 2]


def preprocess(example: dict, image_size: int, crop_scale: float = geometry.CROP_SCALE) -> dict:
    """One builder example -> the crop the network sees, with its landmarks and matrix."""
    center, side = box_square(example["bbox"], crop_scale)
    matrix = crop_matrix(center, side, float(image_size))
    out = {k: v for k, v in example.items() if k != "image"}
    out["image"] = crop_and_resize(example["image"], center, side, image_size)
    out["landmarks"] = transform_points(tf.cast(example["landmarks"], tf.float32), matrix)
    out["crop"] = matrix
    out["mask"] = tf.constant(1.0, tf.float32)
    return out


@dataclasses.dataclass(frozen=True)
class Split:
    """This process's share of a split: the TFDS split string and its size."""

    name: str
    num_examples: int
    process_batch_size: int


def process_split(builder, split: str, global_batch_size: int) -> Split:
    """The process's disjoint, nearly equal share of `split`, with its per-process batch size."""
    local = local_batch_size(global_batch_size)
    share = tfds.even_splits(split, n=jax.process_count(), drop_remainder=False)
    share = share[jax.process_index()]
    return Split(share, builder.info.splits[share].num_examples, local)


def local_batch_size(global_batch_size: int) -> int:
    """This process's share of a global batch; every process gets the same."""
    count = jax.process_count()
    if global_batch_size % count:
        raise ValueError(
            f"batch size {global_batch_size} is not divisible by the {count} processes"
        )
    return global_batch_size // count


def _read(builder, split: str):
    """The split's examples in their stored order, images still encoded."""
    return builder.as_dataset(
        split=split,
        shuffle_files=False,
        read_config=tfds.ReadConfig(interleave_cycle_length=1),
        decoders={"image": tfds.decode.SkipDecoding()},
    )


def _decode(example, builder):
    example = dict(example)
    example["image"] = builder.info.features["image"].decode_example(example["image"])
    return example


def steps_per_epoch(builder, split: str, global_batch_size: int) -> int:
    """Training steps in one epoch of `split`: full global batches only."""
    return builder.info.splits[split].num_examples // global_batch_size


def crop_arrays(builder, split: str, *, image_size: int, crop_scale: float = geometry.CROP_SCALE):
    """Every example of `split` preprocessed once, in the split's order: numpy arrays per feature.

    The crops are deterministic (augmentation happens on the device), so training
    makes them once and reads them from memory every epoch: N x S x S x 3 bytes
    (59 MiB for synthetic_faces at 64 px, 1.5 GB for WFLW at 256 px).
    """
    ds = _read(builder, split).map(
        lambda ex: preprocess(_decode(ex, builder), image_size, crop_scale),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    parts = list(tfds.as_numpy(ds.batch(256).prefetch(1)))
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *parts)


def epoch_order(seed: int, epoch: int, num_examples: int) -> np.ndarray:
    """The examples' order in one epoch: a full permutation drawn from (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def batches_from_arrays(
    arrays, *, global_batch_size: int, seed: int, start_step: int = 0
) -> Iterator[dict]:
    """Endless per-process batches of `arrays` (crop_arrays' output) in epoch_order.

    Every process draws the same permutation and keeps its slot of each global
    batch, so global batches do not depend on the number of processes, and
    `start_step` continues exactly where a run of that many steps stopped.
    """
    local, index = local_batch_size(global_batch_size), jax.process_index()
    num = len(arrays["image"])
    per_epoch = num // global_batch_size
    if per_epoch == 0:
        raise ValueError(f"{num} examples cannot fill one batch of {global_batch_size}")
    epoch, step = divmod(start_step, per_epoch)
    while True:
        order = epoch_order(seed, epoch, num)
        for step in range(step, per_epoch):
            first = step * global_batch_size + index * local
            chosen = order[first : first + local]
            yield jax.tree_util.tree_map(lambda a, i=chosen: a[i], arrays)
        epoch, step = epoch + 1, 0


def train_batches(
    builder,
    split: str,
    *,
    global_batch_size: int,
    image_size: int,
    seed: int,
    crop_scale: float = geometry.CROP_SCALE,
    start_step: int = 0,
) -> Iterator[dict]:
    """Endless per-process training batches of `split`; the order depends only on (seed, epoch).

    The split is cropped once, here (crop_arrays), then every epoch is a new
    permutation of it (batches_from_arrays): no pipeline to rebuild and no
    shuffle buffer to refill at an epoch boundary, no decoding while training.
    """
    if steps_per_epoch(builder, split, global_batch_size) == 0:
        raise ValueError(
            f"{split}: {builder.info.splits[split].num_examples} examples cannot "
            f"fill one batch of {global_batch_size}"
        )
    local_batch_size(global_batch_size)  # fails before the crops are made
    arrays = crop_arrays(builder, split, image_size=image_size, crop_scale=crop_scale)
    return batches_from_arrays(
        arrays, global_batch_size=global_batch_size, seed=seed, start_step=start_step
    )


def prefetch_to_device(batches: Iterator[dict], put: Callable, size: int = 2) -> Iterator:
    """put(batch) for each batch, issued `size` batches ahead so host-to-device copies overlap steps.

    `put` must be asynchronous, as jax.device_put and jax.make_array_from_process_local_data are.
    """
    queue = collections.deque()
    for batch in batches:
        queue.append(put(batch))
        if len(queue) > size:
            yield queue.popleft()
    yield from queue


def _padding_like(element_spec) -> dict:
    """One all-zero example (empty strings, mask 0) with the structure of element_spec."""

    def zero(spec):
        if spec.dtype == tf.string:
            return tf.constant("", shape=spec.shape)
        return tf.zeros(spec.shape, spec.dtype)

    return tf.nest.map_structure(zero, element_spec)


def eval_steps(builder, split: str, global_batch_size: int) -> int:
    """Evaluation steps for `split`: the same on every process, enough for its largest share."""
    count = jax.process_count()
    shares = tfds.even_splits(split, n=count, drop_remainder=False)
    largest = max(builder.info.splits[s].num_examples for s in shares)
    return -(-largest // (global_batch_size // count))


def eval_batches(
    builder,
    split: str,
    *,
    global_batch_size: int,
    image_size: int,
    crop_scale: float = geometry.CROP_SCALE,
) -> Iterator[dict]:
    """Every example of the process's share once, in order; padded batches carry mask 0."""
    share = process_split(builder, split, global_batch_size)
    steps = eval_steps(builder, split, global_batch_size)
    ds = _read(builder, share.name)
    ds = ds.map(
        lambda ex: preprocess(_decode(ex, builder), image_size, crop_scale),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    padding = _padding_like(ds.element_spec)
    # Images differ in nothing but content after the crop, so a fixed-shape zero example pads.
    ds = ds.concatenate(tf.data.Dataset.from_tensors(padding).repeat())
    ds = ds.take(steps * share.process_batch_size).batch(share.process_batch_size).prefetch(2)
    return iter(tfds.as_numpy(ds))


def train_input(builder, config, start_step: int = 0):
    """input_pipeline.train_batches with the config's split, batch, seed and crop settings."""
    return train_batches(
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
