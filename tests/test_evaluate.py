"""Tests for sphm_jax.evaluate: the training evaluation's numbers, every decoder, tables and figures."""

import json

import jax
import numpy as np
import pytest
from PIL import Image

from sphm_jax import evaluate, heatmaps
from sphm_jax.data import input_pipeline, protocols
from sphm_jax.training import mesh, scoring, train


def _args(tiny_data_dir, directory, *extra):
    args = ["--checkpoint", str(directory), "--dataset", "synthetic_faces/tiny"]
    return args + ["--data_dir", tiny_data_dir, "--image_size", "64", "--batch_size", "8", *extra]


def test_scores_equal_the_training_evaluation_for_every_decoder(
    tiny_data_dir, tiny_checkpoint, tmp_path, capsys
):
    directory, config = tiny_checkpoint
    out = tmp_path / "eval"
    code = evaluate.main(
        _args(
            tiny_data_dir, directory, "--decoders", "all", "--output_dir", str(out), "--faces", "2"
        )
    )
    assert code == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())["results"]
    rows = results[directory.name]
    assert set(rows) == set(heatmaps.METHODS)

    config.data_dir = tiny_data_dir
    builder = input_pipeline.load_builder(config.dataset, config)
    dp = mesh.data_parallel(jax.devices())
    model = train.create_model(config, 68)
    state = train.create_train_state(jax.random.key(0), config, model, 10)  # the fixture's weights
    for decoder in heatmaps.METHODS:
        config.decoder = decoder
        cfg = train.StepConfig.from_config(config, 68)
        eval_fn = jax.jit(lambda s, b, cfg=cfg: train.eval_step(s, b, cfg))
        predict = lambda batch, eval_fn=eval_fn: {"points": eval_fn(state, batch)}
        expected = scoring.evaluate(predict, builder, "test", config, dp)
        got = rows[decoder]["test"]["inter_ocular"]
        assert got["num_examples"] == 16
        np.testing.assert_allclose(got["nme"], expected["nme"], rtol=1e-5)
        assert f"| {directory.name} | {decoder} | {100 * got['nme']:.2f} |" in printed
    for name in ("ced_test.png", "faces_test.png", "heatmaps_test.png"):
        with Image.open(out / name) as image:
            assert image.size[0] > 200 and image.size[1] > 200
            assert np.asarray(image).std() > 5  # something is drawn
    assert (out / "table.md").read_text().startswith("NME normalised by inter_ocular")


def test_several_checkpoints_and_a_union_split(tiny_data_dir, tiny_checkpoint, tmp_path, capsys):
    directory, _ = tiny_checkpoint
    args = _args(tiny_data_dir, directory, "--checkpoint", str(directory), "--label", "a")
    args += [
        "--label",
        "b",
        "--splits",
        "test[:6],test[6:]+test[:6]",
        "--output_dir",
        str(tmp_path),
    ]
    assert evaluate.main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert set(results) == {"a", "b"}
    part = results["a"]["local_softargmax"]["test[:6]"]["inter_ocular"]
    whole = results["a"]["local_softargmax"]["test[6:]+test[:6]"]["inter_ocular"]
    assert (part["num_examples"], whole["num_examples"]) == (6, 16)
    assert results["a"] == results["b"]  # the same checkpoint twice


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--decoders", "argmin"], "unknown decoder"),
        (["--label", "x", "--label", "y"], "2 --label for 1 --checkpoint"),
    ],
)
def test_bad_flags_are_refused(tiny_data_dir, tiny_checkpoint, extra, message, capsys):
    with pytest.raises(SystemExit):
        evaluate.main(_args(tiny_data_dir, tiny_checkpoint[0], *extra))
    assert message in capsys.readouterr().err


def test_missing_split_and_checkpoint_exit_2(tiny_data_dir, tiny_checkpoint, tmp_path, capsys):
    assert evaluate.main(_args(tiny_data_dir, tiny_checkpoint[0], "--splits", "validation")) == 2
    assert "no split ['validation']" in capsys.readouterr().err
    assert evaluate.main(_args(tiny_data_dir, tmp_path / "nothing")) == 2
    assert "nothing" in capsys.readouterr().err


def test_table_layout_follows_the_protocol():
    protocol = protocols.get("ibug_300w/split2")
    score = {"nme": 0.05, "auc@0.07": 0.5, "failure_rate@0.1": 0.01}
    by_split = {label: {n: dict(score) for n in protocol.norms} for label, _ in protocol.splits}
    table = evaluate.format_table({"m": {"local_softargmax": by_split}}, "box", protocol)
    header, _, row = table.splitlines()
    assert header == "| model | decoder | common | challenge | full | AUC@0.07 | FR@0.1 |"
    assert row == "| m | local_softargmax | 5.00 | 5.00 | 5.00 | 50.00 | 1.00 |"


def test_extremes_keeps_the_k_worst_and_best():
    extremes = evaluate.Extremes(2)
    for i, nme in enumerate([0.3, 0.1, 0.5, 0.2, 0.4]):
        extremes.add(nme, (i,))
    worst, best = extremes.ranked()
    assert [n for n, _ in worst] == [0.5, 0.4] and [n for n, _ in best] == [0.1, 0.2]
