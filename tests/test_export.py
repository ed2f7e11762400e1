"""Tests for sphm_jax.export: each artefact of a trained tiny model, run by its own runtime, gives
inference.landmarks' landmarks on the same crops; any decoder; bad input."""

import json

import pytest

from sphm_jax import export
from sphm_jax.toolkit import artefacts
from tests.helpers import TFLITE_BATCH, assert_parity, expected, run_artefact


@pytest.mark.xdist_group("uninterrupted")
@pytest.mark.parametrize("fmt", artefacts.FORMATS)
def test_trained_model_artefact_matches_inference(fmt, trained, crops, tmp_path, capsys):
    workdir, model, variables, settings = trained
    args = ["--checkpoint", str(workdir), "--output", str(tmp_path), "--format", fmt]
    batch = ["--batch", str(TFLITE_BATCH)] if fmt == "tflite" else []
    assert export.main([*args, *batch]) == 0
    path = tmp_path / artefacts.FILE_NAMES[fmt]
    description = json.loads((tmp_path / f"{path.name}.json").read_text())
    assert description["decoder"] == settings["decoder"] == "local_softargmax"
    assert description["inputs"]["images"]["shape"][1:] == [64, 64, 3]
    want = expected(model, variables, crops, settings)
    assert_parity(run_artefact(fmt, path, crops), want)
    if fmt != "tflite":  # the batch is dynamic: one crop, and three
        assert_parity(run_artefact(fmt, path, crops[:1]), [w[:1] for w in want])
        assert_parity(run_artefact(fmt, path, crops[5:]), [w[5:] for w in want])
        assert_parity(artefacts.runner(fmt, path)(crops), want)


@pytest.mark.xdist_group("uninterrupted")
def test_any_decoder_is_selectable(trained, crops, tmp_path):
    workdir, model, variables, settings = trained
    args = ["--checkpoint", str(workdir), "--output", str(tmp_path), "--format", "stablehlo"]
    assert export.main([*args, "--decoder", "argmax_quarter"]) == 0
    settings = {**settings, "decoder": "argmax_quarter"}
    got = run_artefact("stablehlo", tmp_path / "landmarks.stablehlo", crops)
    assert_parity(got, expected(model, variables, crops, settings))


@pytest.mark.xdist_group("uninterrupted")
def test_bad_input_is_named(trained, tmp_path, capsys, monkeypatch):
    workdir = trained[0]
    out = ["--output", str(tmp_path)]
    assert export.main(["--checkpoint", str(tmp_path / "nope"), *out, "--format", "onnx"]) == 1
    assert "nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export.main(["--checkpoint", str(workdir), *out, "--format", "pb"])
    assert "invalid choice: 'pb'" in capsys.readouterr().err
    ckpt = ["--checkpoint", str(workdir), *out]
    assert export.main([*ckpt, "--format", "onnx", "--float16"]) == 1
    assert "float16 weights are offered for tflite only" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "jax2onnx", None)  # as if not installed
    assert export.main([*ckpt, "--format", "onnx"]) == 1
    assert "pip install 'sphm_jax[export]'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown decoder 'soft'"):
        artefacts.exportable_fn(None, None, decoder="soft")


@pytest.mark.xdist_group("uninterrupted")
def test_onnx_argmax_with_a_dynamic_batch_says_to_fix_it(trained, tmp_path, capsys):
    args = ["--checkpoint", str(trained[0]), "--output", str(tmp_path), "--format", "onnx"]
    assert export.main([*args, "--decoder", "argmax"]) == 1
    err = capsys.readouterr().err
    assert "Symbolic dimension 'N'" in err and "a fixed --batch converts it" in err
    assert not (tmp_path / "landmarks.onnx").exists()
