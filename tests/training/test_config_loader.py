"""Tests for sphm_jax.training.config_loader: --config names a file or a shipped config, from any
directory, and the commands run from a non-editable install (`pip install .`) outside the checkout;
every shipped config passes validate, and each problem gets one line."""

import glob
import importlib
import json
import os
import shutil
import subprocess
import sys
import time

import ml_collections
import pytest
from absl import flags

from sphm_jax.training import config_loader, train
from sphm_jax.training.configs import ablation, default, tiny
from tests.helpers import ROOT, cli_args


def test_shipped_configs_are_the_repositorys_configs_folder():
    # One copy: the package's configs/ is the top-level configs/ (a symlink), not a duplicate.
    assert os.path.samefile(config_loader.SHIPPED_DIR, os.path.join(ROOT, "configs"))
    assert os.path.islink(os.path.join(ROOT, "sphm_jax", "training", "configs"))
    assert {"default", "synthetic", "tiny", "ablation", "wflw"} <= set(config_loader.shipped())
    assert "__init__" not in config_loader.shipped()


def test_an_existing_file_is_used_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tiny.py").write_text("def get_config():\n    return None\n")
    assert config_loader.resolve("configs/tiny.py") == "configs/tiny.py"  # not the shipped tiny
    assert config_loader.resolve("configs/tiny.py:x") == "configs/tiny.py:x"


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
    assert (
        config_loader.resolve(value) == os.path.join(config_loader.SHIPPED_DIR, name + ".py") + arg
    )


@pytest.mark.parametrize("value", ["configs/nope.py", "nope", "elsewhere/tiny.py", "/x/tiny.py"])
def test_nothing_matching_is_an_error_naming_the_value(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    path = value.partition(":")[0]
    with pytest.raises(ValueError, match=f"no config file '{path}'.*synthetic, tiny"):
        config_loader.resolve(value)


def test_the_flag_loads_a_shipped_config_with_overrides_and_names_a_missing_one(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    argv = ["prog", "--config", "configs/tiny.py", "--config.num_train_steps=3"]
    flag_values = flags.FlagValues()
    config_loader.DEFINE_config_file("config", flag_values=flag_values, sys_argv=argv)
    flag_values(argv)
    assert flag_values.config.num_train_steps == 3 and flag_values.config.image_size == 64
    argv = ["prog", "--config=configs/nope.py"]
    flag_values = flags.FlagValues()
    config_loader.DEFINE_config_file("config", flag_values=flag_values, sys_argv=argv)
    with pytest.raises(flags.IllegalFlagValueError, match="flag --config=configs/nope.py: no conf"):
        flag_values(argv)


# Run by the installed copy: where its modules come from, that the builders register, and the
# --help of the two argparse tools (evaluate, predict).
TOOLS = """
import contextlib, importlib, io, json, runpy, sys
import tensorflow_datasets as tfds
import sphm_jax.training.config_loader, sphm_jax.training.configs.tiny
names = ["synthetic_faces", "wflw", "ibug_300w", "ibug_300w_lp", "ibug_300vw", "cofw", "aflw",
         "menpo", "pts_folder"]
modules = [sys.modules[m] for m in ("sphm_jax", "sphm_jax.training.configs.tiny", "sphm_jax.training.config_loader")]
modules += [importlib.import_module("tfds_builders." + n) for n in names]
helps = {}
for tool in ("evaluate", "predict"):
    sys.argv = [tool, "--help"]
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        runpy.run_module("sphm_jax." + tool, run_name="__main__")
    helps[tool] = out.getvalue()
json.dump({"files": [m.__file__ for m in modules],
           "builders": {n: tfds.builder_cls(n).__module__ for n in names},
           "shipped": sphm_jax.training.config_loader.SHIPPED_DIR, "helps": helps}, sys.stdout)
"""


def test_commands_run_from_a_non_editable_install(tmp_path):
    """`pip install .` (not -e) into a folder, then every command from another directory.

    main loads and checks its config (sphm_jax.training.config_loader reads the shipped default) and
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


CONFIG_FILES = sorted(
    os.path.splitext(os.path.basename(p))[0]
    for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
    if not os.path.basename(p).startswith("_")
)


def all_configs():
    """Every config file of configs/, and every ablation row over every dataset config."""
    for name in CONFIG_FILES:
        if name != "ablation":
            yield name, importlib.import_module(f"sphm_jax.training.configs.{name}").get_config()
    for row in ablation.ROWS:
        for name in CONFIG_FILES:
            if name != "ablation":
                yield f"ablation:{row},{name}", ablation.get_config(f"{row},{name}")


def test_every_shipped_config_validates():
    names = []
    for name, config in all_configs():
        config_loader.validate(config, num_devices=8)
        names.append(name)
    assert "tiny" in names and "wflw" in names and "ablation:baseline,synthetic" in names


def problems(config, num_devices=1):
    with pytest.raises(config_loader.ConfigError) as info:
        config_loader.validate(config, num_devices)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{len(lines) - 1} problem(s) in the config:"
    return [line.strip() for line in lines[1:]]


def test_unknown_fields_and_wrong_types_each_get_a_line():
    raw = default.get_config().to_dict()  # a plain ConfigDict, as a config file may build one
    raw.update(batch_sise=32, batch_size="32", siamese=1, sigma=True, data_dir=5, quantize=3)
    raw["eval_splits"] = ("test", 3)
    raw["model"]["widht"] = 64
    raw["augment"] = 1.0
    found = problems(ml_collections.ConfigDict(raw))
    assert found[0].startswith("augment: must be a ConfigDict, got float 1.0")
    assert found[1:] == [
        "batch_sise: unknown field (fields here: "
        + ", ".join(sorted(raw)).replace("batch_sise, ", "")
        + ")",
        "batch_size: must be int, got str '32'",
        "data_dir: must be str or None, got int 5",
        "eval_splits: elements must be str, got ['test', 3]",
        "model.widht: unknown field (fields here: depth, num_stacks, width)",
        "quantize: must be str or None, got int 3",
        "siamese: must be bool, got int 1",
        "sigma: must be float, got bool True",
    ]


def test_impossible_sizes_each_get_a_line():
    config = tiny.get_config()
    config.heatmap_size = 24  # does not divide 64
    config.window = 31  # larger than the heatmap
    config.batch_size = 6  # not divisible by 4 devices
    config.model.width = 12
    config.decoder = "softargmax"
    config.augment.scale = (1.2, 0.8)
    config.learning_rate = float("inf")
    assert problems(config, num_devices=4) == [
        "learning_rate: must be a positive finite number, got inf",
        "batch_size: 6 is not divisible by the 4 devices",
        "heatmap_size: 24 does not divide image_size 64",
        "window: 31 is larger than the 24x24 heatmap",
        "model.width: must be a positive multiple of 8, got 12",
        (
            "decoder: must be one of ('local_softargmax', 'argmax', 'argmax_quarter', "
            "'global_softargmax', 'dark'), got 'softargmax'"
        ),
        "augment.scale: must be (low, high) with 0 < low <= high, got (1.2, 0.8)",
    ]


@pytest.mark.parametrize(
    "field,value,message",
    [
        (
            "heatmap_size",
            32,
            "heatmap_size: FAN's heatmaps are a quarter of its input: "
            "image_size 64 needs heatmap_size 16, got 32",
        ),
        ("image_size", 72, "image_size: FAN of depth 2 needs a multiple of 16, got 72"),
        ("window", 4, "window: must be a positive odd int, got 4"),
        ("batch_size", 0, "batch_size: must be a positive finite number, got 0"),
        ("lr_schedule", "linear", "lr_schedule: must be one of ('step', 'cosine'), got 'linear'"),
        ("warmup_steps", -5, "warmup_steps: must be >= 0, got -5"),
    ],
)
def test_one_wrong_value_one_line(field, value, message):
    config = tiny.get_config()
    setattr(config, field, value)
    assert message in problems(config)


def test_train_and_evaluate_refuses_before_building_anything(tmp_path):
    config = tiny.get_config()
    config.data_dir = str(tmp_path / "tfds")
    config.window = 17
    with pytest.raises(config_loader.ConfigError, match="window: 17 is larger than the 16x16"):
        train.train_and_evaluate(config, str(tmp_path / "workdir"))
    assert not os.listdir(tmp_path)  # no dataset built, no workdir made


def test_main_prints_the_problems_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphm_jax.main",
            "--config",
            "configs/tiny.py",
            "--config.window=17",
            "--config.batch_size=0",
            f"--workdir={tmp_path}",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "error: 2 problem(s) in the config:\n  batch_size: must be a positive" in proc.stderr
    assert "window: 17 is larger than the 16x16 heatmap" in proc.stderr
    assert "Traceback" not in proc.stderr
