"""PyTorch FAN state_dict -> Flax conversion: loading, refusals and the CLI."""

import ast
import glob
import os
import pickle
import re

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
fa_models = pytest.importorskip("face_alignment.models")

from sphm_jax import convert
from sphm_jax.training import checkpoints
from tests.helpers import ROOT

torch.set_num_threads(2)


class RunsCode:
    """Unpickling this creates `marker`: stands for any code in a pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def fan1_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("torch") / "fan1.pth"
    torch.save(fa_models.FAN(1).state_dict(), path)
    return path


def images(n=1, size=64):
    return np.random.default_rng(0).uniform(size=(n, size, size, 3)).astype(np.float32)


def assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def test_reads_architecture_from_keys(fan1_file):
    model, variables = convert.fan_from_torch(fan1_file)
    assert model.config() == {"num_stacks": 1, "num_landmarks": 68, "width": 256, "depth": 4}
    kernel = variables["params"]["conv2"]["downsample_2"]["kernel"]
    expected = torch.load(fan1_file, weights_only=True)["conv2.downsample.2.weight"]
    np.testing.assert_array_equal(kernel, expected.numpy().transpose(2, 3, 1, 0))


def test_wrapped_and_module_prefixed_state_dict(fan1_file, tmp_path):
    state_dict = torch.load(fan1_file, weights_only=True)
    wrapped = tmp_path / "wrapped.pth.tar"
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in state_dict.items()}, "epoch": 3}, wrapped
    )
    _, expected = convert.fan_from_torch(fan1_file)
    _, got = convert.fan_from_torch(wrapped)
    assert_trees_equal(got, expected)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupted_file_is_named(fan1_file, tmp_path, damage):
    path = tmp_path / "broken.pth"
    data = fan1_file.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else os.urandom(4096))
    with pytest.raises(convert.ConversionError, match=re.escape(str(path))):
        convert.fan_from_torch(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        convert.fan_from_torch(tmp_path / "nope.pth")


def test_non_fan_state_dict_is_refused_with_its_keys(tmp_path):
    path = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(3, 4).state_dict(), path)
    with pytest.raises(
        convert.ConversionError,
        match=r"not a face-alignment FAN.*missing 'conv1.weight'.*found keys 'weight', 'bias'",
    ):
        convert.fan_from_torch(path)


def test_missing_and_misshapen_fan_keys_are_listed(fan1_file):
    state_dict = torch.load(fan1_file, weights_only=True)
    del state_dict["m0.b3_2.conv1.weight"]
    state_dict["top_m_0.conv2.weight"] = torch.zeros(64, 128, 3, 1)
    state_dict["extra.weight"] = torch.zeros(3)
    with pytest.raises(convert.ConversionError) as error:
        convert.fan_from_torch(state_dict)
    message = str(error.value)
    assert "missing keys: 'm0.b3_2.conv1.weight'" in message
    assert "unexpected keys: 'extra.weight'" in message
    assert "top_m_0.conv2.weight: (3, 1, 128, 64)" in message


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickled_code_is_refused_and_not_run(tmp_path, writer):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        if writer == "pickle":
            pickle.dump({"conv1.weight": RunsCode(str(marker))}, f, protocol=2)
        else:
            torch.save({"conv1.weight": RunsCode(str(marker))}, f)
    with pytest.raises(convert.ConversionError, match=re.escape(f"{path}: refused to load")):
        convert.fan_from_torch(path)
    assert convert.main(["--torch", str(path), "--output", str(tmp_path / "out")]) == 1
    assert not marker.exists() and not (tmp_path / "out").exists()
    # Control: an unrestricted unpickler does run it, so the refusal mattered.
    if writer == "pickle":
        with open(path, "rb") as f:
            pickle.load(f)
        assert marker.exists()


@pytest.mark.filterwarnings("ignore:.*torch.jit.trace:DeprecationWarning")
def test_torchscript_archive_gets_export_instructions(tmp_path):
    net = fa_models.FAN(1).eval()
    path = tmp_path / "2DFAN1.zip"
    with torch.no_grad():
        torch.jit.trace(net, torch.zeros(1, 3, 64, 64), strict=False).save(str(path))
    with pytest.raises(
        convert.ConversionError, match=r"TorchScript archive.*torch\.jit\.load.*state_dict\(\)"
    ):
        convert.fan_from_torch(path)


def test_without_torch_says_so(monkeypatch, fan1_file):
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    with pytest.raises(ImportError, match="needs torch"):
        convert.fan_from_torch(fan1_file)


def test_cli_output_loads_with_identical_outputs(fan1_file, tmp_path, capsys):
    out = tmp_path / "flax_fan1"
    assert convert.main(["--torch", str(fan1_file), "--output", str(out)]) == 0
    assert "wrote FAN" in capsys.readouterr().out
    model, variables = checkpoints.load_model(out)
    ref_model, ref_variables = convert.fan_from_torch(fan1_file)
    assert model == ref_model
    assert_trees_equal(variables, ref_variables)
    x = images()
    for got, expected in zip(model.apply(variables, x), ref_model.apply(ref_variables, x)):
        np.testing.assert_array_equal(got, expected)


def _reported(text, what):
    return float(re.search(rf"{what}[^:]*: ([0-9.e+-]+)", text).group(1))


def test_cli_compare_prints_both_differences(fan1_file, capsys):
    code = convert.main(["--torch", str(fan1_file), "--compare", "--size", "64", "--batch", "1"])
    text = capsys.readouterr().out
    assert code == 0, text
    scale = float(re.search(r"max abs PyTorch heatmap ([0-9.e+-]+)", text).group(1))
    assert 0 < _reported(text, "max abs heatmap difference") <= 1e-5 * scale
    # argmax_quarter steps in quarters, so any disagreement would show as >= 0.25.
    assert _reported(text, r"max landmark difference \(argmax_quarter\)") < 0.25
    assert _reported(text, r"max landmark difference \(local_softargmax\)") <= 1e-3


def test_cli_compare_on_image_files(fan1_file, tmp_path, capsys):
    from PIL import Image  # pylint: disable=g-import-not-at-top

    rng = np.random.default_rng(1)
    paths = [tmp_path / "a.png", tmp_path / "b.jpg"]
    for path, size in zip(paths, [(80, 50), (64, 64)]):
        Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(path)
    code = convert.main(
        ["--torch", str(fan1_file), "--compare", "--size", "64", "--images", *map(str, paths)]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert "on 2 images of 64x64" in text
    assert "max landmark difference (local_softargmax)" in text


def test_cli_reports_errors(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert convert.main(["--torch", str(bad), "--output", str(tmp_path / "o")]) == 1
    assert f"error: {bad}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit):
        convert.main(["--torch", str(bad)])  # Neither --output nor --compare.


def test_no_module_can_unpickle_code():
    """Every torch.load of the package passes weights_only=True; nothing imports pickle."""
    root = ROOT
    sources = glob.glob(os.path.join(root, "sphm_jax", "**", "*.py"), recursive=True)
    sources += glob.glob(os.path.join(root, "tfds_builders", "**", "*.py"), recursive=True)
    torch_loads = []
    for source in sources:
        tree = ast.parse(open(source).read(), source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {"pickle", "dill", "cloudpickle", "joblib"} & set(names), source
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
                assert keywords.get("weights_only") == "True", (source, node.lineno)
                torch_loads.append(source)
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "np.load":
                keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
                assert keywords.get("allow_pickle") == "False", (source, node.lineno)
    assert any(s.endswith("convert.py") for s in torch_loads)
