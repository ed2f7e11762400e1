"""Fixtures shared by the tests: a tiny dataset and checkpoint, the uninterrupted reference run.

The session and every process it starts share one persistent compilation
cache: the many runs of the same tiny training step (resume, SIGTERM and
SIGKILL reruns, CLI runs) compile it once. XLA_FLAGS are part of its key.
Under pytest-xdist (`-n`, the default of pyproject.toml) the workers share it too.
"""

import os
import shutil
import tempfile

from tests.helpers import RELIABILITY_OVERRIDES, TEST_XLA_FLAGS, tiny_config

# Set before JAX's backend starts, and inherited by every process the tests start.
if TEST_XLA_FLAGS not in os.environ.get("XLA_FLAGS", ""):  # xdist workers inherit it
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

from sphm_jax.training import xla_cpu  # noqa: E402

xla_cpu.apply()  # the commands' CPU path, as every command sets it before JAX starts

# face-alignment's reference helpers are numba functions: compiling them cost ~15 s in each
# process that calls them; run as the plain Python they are, they compute the same.
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

# pytest-xdist's workers inherit the variable from the process that made the folder first.
_OWN_CACHE = "SPHM_JAX_TESTS_XLA_CACHE" not in os.environ
if _OWN_CACHE:
    os.environ["SPHM_JAX_TESTS_XLA_CACHE"] = tempfile.mkdtemp(prefix="sphm_jax_tests_xla_cache_")
COMPILATION_CACHE = os.environ["SPHM_JAX_TESTS_XLA_CACHE"]
os.environ["JAX_COMPILATION_CACHE_DIR"] = COMPILATION_CACHE  # for the processes tests start
jax.config.update("jax_compilation_cache_dir", COMPILATION_CACHE)


def pytest_sessionfinish(session, exitstatus):
    if _OWN_CACHE:
        shutil.rmtree(COMPILATION_CACHE, ignore_errors=True)


from sphm_jax.data import input_pipeline  # noqa: E402
from sphm_jax.training import checkpoints, train  # noqa: E402
from sphm_jax.training.configs import tiny  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """synthetic_faces/tiny (64 train / 16 test faces), built once."""
    path = str(tmp_path_factory.mktemp("tfds_tiny"))
    config = tiny.get_config()
    config.data_dir = path
    input_pipeline.load_builder(config.dataset, config)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory):
    """The checkpoint directory of a randomly initialised configs/tiny.py model."""
    config = tiny.get_config()
    model = train.create_model(config, 68)
    state = train.create_train_state(jax.random.key(0), config, model, 10)
    directory = tmp_path_factory.mktemp("tiny_ckpt") / "checkpoints"
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    checkpoints.save(directory, 0, variables, model.config())
    return directory


@pytest.fixture
def tiny_checkpoint(tiny_checkpoint_dir):
    """(checkpoint directory, a fresh configs/tiny.py config that the test may change)."""
    return tiny_checkpoint_dir, tiny.get_config()


@pytest.fixture(scope="session")  # a module scope is rebuilt when xdist interleaves modules
def uninterrupted(tiny_data_dir, tmp_path_factory):
    """The workdir of a run never stopped (cli_args' config), the reference of the resumed ones.

    Trained in this process: the in-process reruns share its compiled steps, and `main`'s
    reruns in processes of their own must match it bit for bit all the same.
    """
    workdir = tmp_path_factory.mktemp("uninterrupted")
    train.train_and_evaluate(tiny_config(tiny_data_dir, **RELIABILITY_OVERRIDES), str(workdir))
    return workdir


@pytest.fixture(scope="session")
def crops(tiny_data_dir):
    """Eight uint8 test crops of the synthetic faces, as predict and evaluate cut them."""
    config = tiny.get_config()
    config.data_dir = tiny_data_dir
    builder = input_pipeline.load_builder(config.dataset, config)
    batches = input_pipeline.eval_batches(
        builder, "test", global_batch_size=8, image_size=64, crop_scale=config.crop_scale
    )
    return next(batches)["image"]


@pytest.fixture(scope="session")
def trained(uninterrupted):
    """(workdir, model, variables, settings) of the suite's tiny trained run (configs/tiny.py)."""
    model, variables, settings = checkpoints.load_checkpoint(uninterrupted, dtype="float32")
    return uninterrupted, model, variables, settings
