"""Trains and evaluates a model: python -m sphm_jax.main --config configs/<name>.py --workdir DIR.

Config fields can be overridden on the command line, e.g. --config.num_epochs=3.
Multi-host: on Cloud TPU jax.distributed.initialize() finds its peers by
itself; elsewhere pass --coordinator_address, --num_processes, --process_id.
"""

import jax
import tensorflow as tf
from absl import app, flags, logging

from sphm_jax.training import config_loader, preemption, train, xla_cpu

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and eval results.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for multi-host runs.")
flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-host run.")
flags.DEFINE_integer("process_id", None, "This process's index in a multi-host run.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (auto-detected on TPU).")
config_loader.DEFINE_config_file("config", None, "Training configuration.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # tf.data only feeds the host: keep TensorFlow off the accelerators JAX uses.
    tf.config.set_visible_devices([], "GPU")
    if FLAGS.coordinator_address:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    elif FLAGS.distributed:
        jax.distributed.initialize()
    logging.info(
        "process %d of %d, %d local / %d global devices (%s)",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
        jax.devices()[0].platform,
    )
    try:
        train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (config_loader.ConfigError, FloatingPointError) as err:
        raise SystemExit(f"error: {err}") from None  # the message says it all: no traceback
    except preemption.Preempted as stopped:
        if jax.process_count() > 1:
            jax.distributed.shutdown()  # every process stops at the same step: leave together
        preemption.exit_now(str(stopped))


if __name__ == "__main__":
    xla_cpu.apply()  # before JAX starts: XLA reads its flags once
    app.run(main)
