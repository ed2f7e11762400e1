"""Throughput of training, evaluation, decoding and input pipeline: one JSON line per measurement.

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

import json

from absl import app, flags

from sphm_jax.benchmark.suite import WHAT, run, summary
from sphm_jax.training import config_loader, xla_cpu

FLAGS = flags.FLAGS


def define_flags():
    """The command's flags, defined only when it runs: importing the benchmark defines none."""
    config_loader.DEFINE_config_file("config", None, "Training configuration.", lock_config=True)
    flags.DEFINE_enum(
        "what",
        "all",
        WHAT + ("loop", "export", "all", "sweep"),
        "What to time (sweep: only --sweep; export: sphm_jax.export's artefacts, minutes).",
    )
    flags.DEFINE_enum("reference", "none", ("none", "torch"), "Also time the PyTorch reference.")
    flags.DEFINE_integer("repeats", 5, "Timed calls per measurement; the median is reported.")
    flags.DEFINE_integer("num_landmarks", 68, "Landmarks of the synthetic batches.")
    flags.DEFINE_integer(
        "decode_faces", 64, "Faces per decode call (heatmaps of config.heatmap_size)."
    )
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
    xla_cpu.apply()  # before JAX starts: XLA reads its flags once
    define_flags()
    app.run(main)
