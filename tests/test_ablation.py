"""Tests for sphm_jax.ablation: rows, the decoder-only row, paired tests, and a real tiny run."""

import json
import os

import numpy as np
import pytest

from sphm_jax import ablation
from sphm_jax.training.configs import tiny


def test_hm_no_lsa_is_the_hm_models_read_by_argmax_quarter():
    decoded = {
        "baseline": {"argmax_quarter": 0.30, "local_softargmax": 0.29},
        "hm": {"argmax_quarter": 0.20, "local_softargmax": 0.10},
        "siamese": {"argmax_quarter": 0.15, "local_softargmax": 0.05},
    }
    base = tiny.get_config()
    assert ablation.model_row("hm_no_lsa") == "hm"
    got = {row: ablation.row_nme(row, decoded, base) for row in ablation.LABELS}
    assert got == {"baseline": 0.30, "hm": 0.10, "hm_no_lsa": 0.20, "siamese": 0.05}
    config = ablation.row_config(base, "hm_no_lsa", seed=3)
    assert config.seed == 3 and config.quantize is None and config.decoder == "local_softargmax"
    assert ablation.row_config(base, "baseline", 1).quantize == "round"


def test_paired_differences_and_t_test():
    nmes = {"baseline": [0.30, 0.32, 0.31], "hm_no_lsa": [0.25, 0.29, 0.26], "hm": [0.26]}
    tests = ablation.paired(nmes)
    assert list(tests) == ["baseline - hm_no_lsa"]  # the other pairs lack rows or seeds
    t = tests["baseline - hm_no_lsa"]
    np.testing.assert_allclose(t["diffs"], [0.05, 0.03, 0.05])
    d = np.array([0.05, 0.03, 0.05])
    assert t["t"] == pytest.approx(d.mean() / (d.std(ddof=1) / np.sqrt(3)))
    assert t["better_in_seeds"] == 3 and 0 < t["p"] < 0.05


def test_a_real_run_writes_every_table(tiny_data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "WINDOWS", (3,))  # and the config's own 5: two decoding passes
    base = tiny.get_config()
    base.data_dir = tiny_data_dir
    base.num_train_steps = 2
    result = ablation.run(base, str(tmp_path), seeds=[0, 1], table2_rows=list(ablation.LABELS))
    assert set(result["nmes"]) == set(ablation.LABELS)
    assert all(len(v) == 2 and np.all(np.isfinite(v)) for v in result["nmes"].values())
    # hm and hm_no_lsa read the same two trained models with two decoders.
    assert not (tmp_path / "hm_no_lsa").exists() and (tmp_path / "hm" / "seed1").exists()
    hm_own = json.loads((tmp_path / "hm" / "seed0" / "eval_results.json").read_text())
    assert result["nmes"]["hm"][0] == pytest.approx(hm_own["results"]["test"]["nme"], rel=1e-5)
    assert set(result["paired"]) == {" - ".join(p) for p in ablation.PAIRS}
    windows = {f"{w}x{w}" for w in ablation.WINDOWS}
    assert set(result["table3"]["siamese"]) == {"none (global soft-argmax)", *windows}
    assert result["table1"]["hm"]["local_softargmax"] == result["nmes"]["hm"]
    predictions = ablation.row_predictions(
        base, {r: tmp_path / r / "seed0" for r in ("baseline", "hm", "siamese")}, ablation.LABELS
    )
    np.testing.assert_allclose(np.mean(predictions["hm"]["nmes"]), result["nmes"]["hm"][0], 1e-5)
    np.testing.assert_allclose(
        np.mean(predictions["hm_no_lsa"]["nmes"]), result["nmes"]["hm_no_lsa"][0], 1e-5
    )
    paths = ablation.figures(base, predictions, str(tmp_path / "figures"), faces=2)
    assert all(os.path.getsize(p) > 10_000 for p in paths)
