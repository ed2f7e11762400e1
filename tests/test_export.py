"""Tests for sphm_jax.export: each artefact, run by its own runtime, gives inference.landmarks'
landmarks on the same crops (a trained tiny model, a converted face-alignment FAN); bad input."""

import json

import jax
import numpy as np
import pytest

from sphm_jax import convert, export, geometry, inference
from sphm_jax.data import input_pipeline
from sphm_jax.toolkit import artefacts
from sphm_jax.training import checkpoints
from sphm_jax.training.configs import tiny

# float32 all through; the artefacts reorder sums (onnxruntime, XNNPACK), measured <= 1e-5 px.
LANDMARK_TOL_PX = 1e-3
SCORE_TOL = 1e-5
# Only the TFLite converter needs a fixed batch (see artefacts.export_tflite).
TFLITE_BATCH = 8


@pytest.fixture(scope="module")
def crops(tiny_data_dir):
    """Eight uint8 test crops of the synthetic faces, as predict and evaluate cut them."""
    config = tiny.get_config()
    config.data_dir = tiny_data_dir
    builder = input_pipeline.load_builder(config.dataset, config)
    batches = input_pipeline.eval_batches(
        builder, "test", global_batch_size=8, image_size=64, crop_scale=config.crop_scale
    )
    return next(batches)["image"]


def expected(model, variables, images, settings):
    """inference.landmarks with identity crops: landmarks in crop pixels, and the scores."""
    identity = geometry.identity((len(images),))
    decoder = settings["decoder"]
    points, scores = inference.landmarks(
        model.apply,
        variables,
        images,
        identity,
        decoders=(decoder,),
        window=settings["window"],
        temperature=settings["temperature"],
    )
    return np.asarray(points[decoder]), np.asarray(scores)


def run_artefact(fmt, path, images):
    """The artefact run by its own runtime, as a user without sphm_jax would (docs/export.md)."""
    if fmt == "stablehlo":
        exported = jax.export.deserialize(bytearray(path.read_bytes()))
        return [np.asarray(a) for a in exported.call(images)]
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return session.run(["landmarks", "scores"], {"images": images})
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        out = Interpreter(model_path=str(path)).get_signature_runner()(images=images)
        return [out["landmarks"], out["scores"]]
    import tensorflow as tf

    out = tf.saved_model.load(str(path)).signatures["serving_default"](images=tf.constant(images))
    return [out["landmarks"].numpy(), out["scores"].numpy()]


def assert_parity(got, want):
    assert got[0].shape == want[0].shape and got[1].shape == want[1].shape
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=LANDMARK_TOL_PX)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=SCORE_TOL)


@pytest.fixture(scope="module")
def trained(uninterrupted):
    """(workdir, model, variables, settings) of the suite's tiny trained run (configs/tiny.py)."""
    model, variables, settings = checkpoints.load_checkpoint(uninterrupted, dtype="float32")
    return uninterrupted, model, variables, settings


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


@pytest.fixture(scope="module")
def face_alignment_fan():
    """face-alignment's FAN-1 (its full width and depth) with random weights, converted."""
    torch = pytest.importorskip("torch")
    fa_models = pytest.importorskip("face_alignment.models")
    torch.manual_seed(0)
    return convert.fan_from_torch(fa_models.FAN(1).state_dict())


def test_converted_face_alignment_fan_in_stablehlo(face_alignment_fan, crops, tmp_path):
    model, variables = face_alignment_fan
    settings = {"decoder": "local_softargmax", "window": 5, "temperature": 10.0}
    fn = artefacts.exportable_fn(model, variables, **settings)
    path = artefacts.write(fn, "stablehlo", 64, tmp_path)
    assert_parity(
        run_artefact("stablehlo", path, crops), expected(model, variables, crops, settings)
    )


@pytest.mark.xdist_group("uninterrupted")
def test_any_decoder_is_selectable(trained, crops, tmp_path):
    workdir, model, variables, settings = trained
    args = ["--checkpoint", str(workdir), "--output", str(tmp_path), "--format", "stablehlo"]
    assert export.main([*args, "--decoder", "argmax_quarter"]) == 0
    settings = {**settings, "decoder": "argmax_quarter"}
    got = run_artefact("stablehlo", tmp_path / "landmarks.stablehlo", crops)
    assert_parity(got, expected(model, variables, crops, settings))


@pytest.mark.xdist_group("uninterrupted")
def test_tflite_float16_weights_keep_landmarks_close(trained, crops, tmp_path):
    _, model, variables, settings = trained
    fn = artefacts.exportable_fn(model, variables)
    path = artefacts.write(fn, "tflite", 64, tmp_path, batch=TFLITE_BATCH, float16=True)
    assert path.name == "landmarks_float16.tflite"
    got, want = run_artefact("tflite", path, crops), expected(model, variables, crops, settings)
    error = np.linalg.norm(got[0] - want[0], axis=-1)
    print(f"float16 error: median {np.median(error):.2g}, within 0.5 px {np.mean(error < 0.5):.3f}")
    # float16 weights move landmarks by a small fraction of a heatmap pixel (4 crop px), except
    # where the barely trained model's map is nearly flat and rounding moves its maximum.
    assert 0 < np.median(error) < 0.05 and np.mean(error < 0.5) > 0.95


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
