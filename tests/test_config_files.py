"""Tests for sphm_jax.config_files: --config names a file or a shipped config, from any directory,
and the commands run from a non-editable install (`pip install .`) outside the checkout."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from absl import flags

from sphm_jax import config_files
from tests.helpers import cli_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_shipped_configs_are_the_repositorys_configs_folder():
    # One copy: the package's configs/ is the top-level configs/ (a symlink), not a duplicate.
    assert os.path.samefile(config_files.SHIPPED_DIR, os.path.join(ROOT, "configs"))
    assert os.path.islink(os.path.join(ROOT, "sphm_jax", "configs"))
    assert {"default", "synthetic", "tiny", "ablation", "wflw"} <= set(config_files.shipped())
    assert "__init__" not in config_files.shipped()


def test_an_existing_file_is_used_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tiny.py").write_text("def get_config():\n    return None\n")
    assert config_files.resolve("configs/tiny.py") == "configs/tiny.py"  # not the shipped tiny
    assert config_files.resolve("configs/tiny.py:x") == "configs/tiny.py:x"


@pytest.mark.parametrize(
    "value, name, arg",
    [
        ("configs/synthetic.py", "synthetic", ""),
        ("./configs/synthetic.py", "synthetic", ""),
        ("sphm_jax/configs/tiny.py", "tiny", ""),
        ("tiny", "tiny", ""),
        ("tiny.py", "tiny", ""),
        ("configs/ablation.py:hm,wflw", "ablation", ":hm,wflw"),
        ("ablation:baseline", "ablation", ":baseline"),
    ],
)
def test_a_missing_path_names_a_shipped_config(tmp_path, monkeypatch, value, name, arg):
    monkeypatch.chdir(tmp_path)  # no configs/ here
    assert config_files.resolve(value) == os.path.join(config_files.SHIPPED_DIR, name + ".py") + arg


@pytest.mark.parametrize("value", ["configs/nope.py", "nope", "elsewhere/tiny.py", "/x/tiny.py"])
def test_nothing_matching_is_an_error_naming_the_value(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    path = value.partition(":")[0]
    with pytest.raises(ValueError, match=f"no config file '{path}'.*synthetic, tiny"):
        config_files.resolve(value)


def test_the_flag_loads_a_shipped_config_with_overrides_and_names_a_missing_one(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    argv = ["prog", "--config", "configs/tiny.py", "--config.num_train_steps=3"]
    flag_values = flags.FlagValues()
    config_files.DEFINE_config_file("config", flag_values=flag_values, sys_argv=argv)
    flag_values(argv)
    assert flag_values.config.num_train_steps == 3 and flag_values.config.image_size == 64
    argv = ["prog", "--config=configs/nope.py"]
    flag_values = flags.FlagValues()
    config_files.DEFINE_config_file("config", flag_values=flag_values, sys_argv=argv)
    with pytest.raises(flags.IllegalFlagValueError, match="flag --config=configs/nope.py: no conf"):
        flag_values(argv)


# Run by the installed copy: where its modules come from, that the builders register, and the
# --help of the two argparse tools (evaluate, predict).
TOOLS = """
import contextlib, importlib, io, json, runpy, sys
import tensorflow_datasets as tfds
import sphm_jax.config_files, sphm_jax.config_validation, sphm_jax.configs.tiny
names = ["synthetic_faces", "wflw", "ibug_300w", "ibug_300w_lp", "ibug_300vw", "cofw", "aflw",
         "menpo", "pts_folder"]
modules = [sys.modules[m] for m in ("sphm_jax", "sphm_jax.configs.tiny", "sphm_jax.config_files")]
modules += [importlib.import_module("tfds_builders." + n) for n in names]
helps = {}
for tool in ("evaluate", "predict"):
    sys.argv = [tool, "--help"]
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        runpy.run_module("sphm_jax." + tool, run_name="__main__")
    helps[tool] = out.getvalue()
json.dump({"files": [m.__file__ for m in modules],
           "builders": {n: tfds.builder_cls(n).__module__ for n in names},
           "shipped": sphm_jax.config_files.SHIPPED_DIR, "helps": helps}, sys.stdout)
"""


def test_commands_run_from_a_non_editable_install(tmp_path):
    """`pip install .` (not -e) into a folder, then every command from another directory.

    main loads and checks its config (sphm_jax.config_validation reads the shipped default) and
    stops at an impossible batch size before it builds anything: a training run from the install
    compiles for a minute and differs from the checkout's only by the imports checked here.
    """
    start = time.perf_counter()
    src, site, cwd = tmp_path / "src", tmp_path / "site", tmp_path / "elsewhere"
    src.mkdir()
    cwd.mkdir()  # no configs/ here: the README's configs/NAME.py are the installed ones
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("sphm_jax", "configs", "tfds_builders"):  # a copy: the build writes beside it
        shutil.copytree(os.path.join(ROOT, name), src / name, symlinks=True, ignore=skip)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--no-index", "--target", str(site), str(src)], check=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site), "JAX_PLATFORMS": "cpu"}

    def start_python(name, *args):  # output to files: a full pipe would stall a process
        with open(tmp_path / f"{name}.out", "w") as out, open(tmp_path / f"{name}.err", "w") as err:
            return subprocess.Popen(
                [sys.executable, *args], cwd=cwd, env=env, stdout=out, stderr=err
            )

    bad_batch = {"num_train_steps": 2, "batch_size": 0}
    ablation = ["--config", "configs/ablation.py:hm,tiny", "--workdir", str(tmp_path / "ab")]
    procs = {  # at once: each of the four imports TensorFlow and JAX (~8 s of CPU)
        "tools": start_python("tools", "-c", TOOLS),
        "main": start_python("main", *cli_args(tmp_path / "data", tmp_path / "w", bad_batch)),
        # absl loads --config before --helpshort prints the flags and exits with status 1
        "ablation": start_python("ablation", "-m", "sphm_jax.ablation", *ablation, "--helpshort"),
        "benchmark": start_python(
            "benchmark", "-m", "sphm_jax.benchmark", "--config", "tiny", "--helpshort"
        ),
    }
    out = {}
    for name, proc in procs.items():
        code = proc.wait(timeout=600)
        stdout, stderr = ((tmp_path / f"{name}.{e}").read_text() for e in ("out", "err"))
        assert code == (0 if name == "tools" else 1), f"{name}: {stderr[-3000:]}"
        assert "Flags parsing error" not in stderr, f"{name}: {stderr[-3000:]}"
        out[name] = stdout, stderr
    tools = json.loads(out["tools"][0])
    for path in tools["files"] + [tools["shipped"]]:
        assert path.startswith(str(site)), path  # the installed copy, not the checkout
    assert os.path.isfile(os.path.join(tools["shipped"], "synthetic.py"))
    assert not os.path.islink(tools["shipped"])  # real files in the install
    assert all(module.startswith("tfds_builders.") for module in tools["builders"].values())
    assert all(text.startswith("usage:") for text in tools["helps"].values()), tools["helps"]
    assert "error: 1 problem(s) in the config:\n  batch_size: must be" in out["main"][1]
    assert "Traceback" not in out["main"][1] and not os.path.exists(tmp_path / "data")
    assert "--workdir" in out["ablation"][0] and "--what" in out["benchmark"][0]
    print(f"install and commands: {time.perf_counter() - start:.1f} s")
