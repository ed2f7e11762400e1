"""Tests for sphm_jax.config_validation: every shipped config passes, each problem gets one line."""

import glob
import importlib
import os
import subprocess
import sys

import ml_collections
import pytest

from sphm_jax import config_validation, train
from sphm_jax.configs import ablation, default, tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(
    os.path.splitext(os.path.basename(p))[0]
    for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
    if not os.path.basename(p).startswith("_")
)


def all_configs():
    """Every config file of configs/, and every ablation row over every dataset config."""
    for name in CONFIG_FILES:
        if name != "ablation":
            yield name, importlib.import_module(f"sphm_jax.configs.{name}").get_config()
    for row in ablation.ROWS:
        for name in CONFIG_FILES:
            if name != "ablation":
                yield f"ablation:{row},{name}", ablation.get_config(f"{row},{name}")


def test_every_shipped_config_validates():
    names = []
    for name, config in all_configs():
        config_validation.validate(config, num_devices=8)
        names.append(name)
    assert "tiny" in names and "wflw" in names and "ablation:baseline,synthetic" in names


def problems(config, num_devices=1):
    with pytest.raises(config_validation.ConfigError) as info:
        config_validation.validate(config, num_devices)
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
    with pytest.raises(config_validation.ConfigError, match="window: 17 is larger than the 16x16"):
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
