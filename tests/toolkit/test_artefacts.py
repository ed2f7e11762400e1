"""Tests for sphm_jax.toolkit.artefacts: a converted face-alignment FAN as StableHLO, and float16
TFLite weights, each run by its own runtime against inference.landmarks (the export command's
artefacts of a trained model: tests/test_export.py)."""

import numpy as np
import pytest

from sphm_jax import convert
from sphm_jax.toolkit import artefacts
from tests.helpers import TFLITE_BATCH, assert_parity, expected, run_artefact


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
