"""Tests for sphm_jax.predict: agreement with the evaluation step and with face-alignment,
box files, odd and broken inputs, and a folder of 1,000 images in bounded memory."""

import csv
import functools
import json
import os
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from sphm_jax import geometry, predict
from sphm_jax.data import input_pipeline
from sphm_jax.training import checkpoints, scoring, train
from tests.helpers import ROOT


def _write_rgb(path, shape, seed=0):
    rgb = np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


def test_predict_on_synthetic_faces_equals_the_evaluation_step(
    tiny_data_dir, tiny_checkpoint, tmp_path
):
    directory, config = tiny_checkpoint
    config.data_dir = tiny_data_dir
    builder = input_pipeline.load_builder(config.dataset, config)
    # The test images as PNG files (lossless: the same pixels) and their boxes in a JSON file.
    boxes = {}
    for ex in tfds.as_numpy(builder.as_dataset(split="test")):
        name = ex["image_id"].decode() + ".png"
        (tmp_path / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ex["image"]).save(tmp_path / "images" / name)
        boxes[name] = [ex["bbox"].tolist()]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "out.json"
    args = [str(tmp_path / "images"), "--checkpoint", str(directory), "--boxes"]
    args += [str(tmp_path / "boxes.json"), "--output", str(out), "--batch_size", "5"]
    args += ["--image_size", str(config.image_size), "--crop_scale", str(config.crop_scale)]
    assert predict.main(args) == 0
    records = {r["image"]: r for r in json.loads(out.read_text())}
    assert len(records) == len(boxes) == 16

    model, variables = checkpoints.load_model(directory)
    state = train.TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        tx=optax.sgd(0.0),  # eval_step reads only apply_fn and the variables
        batch_stats=variables["batch_stats"],
    )
    cfg = train.StepConfig.from_config(config, 68)
    step = jax.jit(functools.partial(train.eval_step, cfg=cfg))
    batches = input_pipeline.eval_batches(
        builder,
        "test",
        global_batch_size=8,
        image_size=config.image_size,
        crop_scale=config.crop_scale,
    )
    compared = 0
    for batch in itertools_take(batches, input_pipeline.eval_steps(builder, "test", 8)):
        expected = np.asarray(step(state, {k: batch[k] for k in scoring.EVAL_KEYS}))
        for i, image_id in enumerate(batch["image_id"]):
            if batch["mask"][i]:
                got = np.array(records[image_id.decode() + ".png"]["landmarks"])
                np.testing.assert_allclose(got, expected[i], atol=2e-4)  # JSON keeps 4 decimals
                compared += 1
    assert compared == 16


def itertools_take(iterator, n):
    for _ in range(n):
        yield next(iterator)


def test_converted_face_alignment_fan_predicts_its_own_landmarks(tmp_path):
    torch = pytest.importorskip("torch")
    fa_models = pytest.importorskip("face_alignment.models")
    fa_utils = pytest.importorskip("face_alignment.utils")
    from sphm_jax import convert  # pylint: disable=g-import-not-at-top

    torch.manual_seed(0)
    net = fa_models.FAN(1).eval()
    torch.save(net.state_dict(), tmp_path / "fan1.pth")
    assert (
        convert.main(["--torch", str(tmp_path / "fan1.pth"), "--output", str(tmp_path / "flax")])
        == 0
    )
    predictor = predict.Predictor.load(
        tmp_path / "flax", image_size=256, crop_scale=1.0, decoder="argmax_quarter", batch_size=2
    )
    images = [_write_rgb(tmp_path / f"{i}.png", (256, 256), seed=i) for i in range(2)]
    # A whole 256 x 256 image at crop_scale 1 is its own crop: the same input for both networks.
    crop, matrix = predictor.crop(images[0], predict.whole_image_box(256, 256))
    np.testing.assert_array_equal(crop, images[0])
    np.testing.assert_allclose(matrix, geometry.identity(), atol=1e-6)

    ours = np.stack([predictor(image)[0][0] for image in images])
    with torch.no_grad():
        x = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
        hm = net(x)[-1].numpy()
    theirs, _, _ = fa_utils.get_preds_fromhm(hm)  # in the 64 x 64 map, before int truncation
    # face-alignment's map coordinates put pixel centres at +0.5 (its 1-based heritage).
    in_map = np.asarray(geometry.image_to_heatmap(ours, 4)) + 0.5
    np.testing.assert_allclose(in_map, theirs, atol=1e-3)


def test_box_files_json_csv_and_pts(tmp_path, tiny_checkpoint):
    _write_rgb(tmp_path / "a.png", (60, 80))
    boxes_json = {"a.png": [[10, 10, 40, 50], [30, 5, 70, 45]]}
    (tmp_path / "b.json").write_text(json.dumps(boxes_json))
    (tmp_path / "b.csv").write_text(
        "image,x_min,y_min,x_max,y_max\na.png,10,10,40,50\na.png,30,5,70,45\n"
    )
    assert predict.read_boxes(tmp_path / "b.json") == predict.read_boxes(tmp_path / "b.csv")
    records = [{"image": "a.png", "box": b} for b in boxes_json["a.png"]]
    (tmp_path / "r.json").write_text(json.dumps(records))
    assert predict.read_boxes(tmp_path / "r.json") == predict.read_boxes(tmp_path / "b.csv")
    pts = "version: 1\nn_points: 3\n{\n11 21\n41 11\n31 51\n}\n"  # 1-based
    (tmp_path / "a.pts").write_text(pts)
    np.testing.assert_array_equal(predict.pts_box(tmp_path / "a.png"), [10, 10, 40, 50])

    out = tmp_path / "out.csv"
    args = [str(tmp_path / "a.png"), "--checkpoint", str(tiny_checkpoint[0]), "--image_size", "64"]
    assert predict.main(args + ["--boxes", str(tmp_path / "b.csv"), "--output", str(out)]) == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [r["face"] for r in rows] == ["0", "1"]
    assert [float(rows[1][k]) for k in predict.BOX_FIELDS] == [30, 5, 70, 45]
    assert len([k for k in rows[0] if k.startswith("score_")]) == 68
    assert predict.main(args + ["--boxes", "pts", "--output", str(tmp_path / "p.jsonl")]) == 0
    record = json.loads((tmp_path / "p.jsonl").read_text())
    assert record["box"] == [10, 10, 40, 50] and len(record["landmarks"]) == 68


def test_odd_formats_broken_files_and_bad_boxes_in_one_run(tmp_path, tiny_checkpoint):
    folder = tmp_path / "in"
    folder.mkdir()
    rgb = _write_rgb(folder / "rgb.png", (64, 64))
    Image.fromarray(rgb[..., 0], "L").save(folder / "grey.png")
    Image.fromarray(np.dstack([rgb, np.full((64, 64), 255, np.uint8)]), "RGBA").save(
        folder / "rgba.png"
    )
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(folder / "sixteen.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(rgb[:, :40]).save(folder / "exif.jpg", exif=exif)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "empty.png").write_bytes(b"")
    boxes = {
        n: [[-0.5, -0.5, 63.5, 63.5]] for n in ("rgb.png", "grey.png", "rgba.png", "sixteen.png")
    }
    boxes["exif.jpg"] = [[0, 0, 60, 38], [500, 500, 600, 600]]  # the second is off the image
    boxes["broken.jpg"] = boxes["empty.png"] = [[0, 0, 10, 10]]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "out.json"
    args = [str(folder), "--checkpoint", str(tiny_checkpoint[0]), "--image_size", "64"]
    args += ["--boxes", str(tmp_path / "boxes.json"), "--output", str(out), "--batch_size", "4"]
    args += ["--overlays", str(tmp_path / "overlays")]
    assert predict.main(args) == 1  # something failed, and the exit code says so
    records = json.loads(out.read_text())
    ok = {(r["image"], r["face"]) for r in records if r["error"] is None}
    assert ok == {
        ("rgb.png", 0),
        ("grey.png", 0),
        ("rgba.png", 0),
        ("sixteen.png", 0),
        ("exif.jpg", 0),
    }
    errors = {r["image"]: r["error"] for r in records if r["error"]}
    assert set(errors) == {"broken.jpg", "empty.png", "exif.jpg"}
    assert "broken.jpg" in errors["broken.jpg"] and "outside" in errors["exif.jpg"]
    # Records come in input order (sorted file names), errors included.
    assert [r["image"] for r in records] == sorted(r["image"] for r in records)
    for name in ("rgb", "grey", "rgba", "sixteen", "exif"):
        drawn = np.asarray(Image.open(tmp_path / "overlays" / f"{name}.png"))
        assert drawn.ndim == 3 and drawn.shape[-1] == 3
    assert np.asarray(Image.open(tmp_path / "overlays" / "exif.png")).shape[:2] == (40, 64)
    # The grey, RGBA (opaque) and 16-bit images hold the same pixels as channel 0 of rgb.png's.
    by_image = {r["image"]: np.array(r["landmarks"]) for r in records if r["error"] is None}
    np.testing.assert_allclose(by_image["grey.png"], by_image["sixteen.png"], atol=1e-4)


def test_missing_input_and_checkpoint_exit_2(tmp_path, tiny_checkpoint, capsys):
    assert predict.main([str(tmp_path / "none"), "--checkpoint", str(tiny_checkpoint[0])]) == 2
    assert "none: no such file" in capsys.readouterr().err
    _write_rgb(tmp_path / "a.png", (8, 8))
    assert predict.main([str(tmp_path / "a.png"), "--checkpoint", str(tmp_path / "nockpt")]) == 2
    assert "nockpt" in capsys.readouterr().err


LOAD_SCRIPT = """
import resource, sys
from sphm_jax import predict
code = predict.main(sys.argv[1:])
print("MAXRSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(code)
"""


def _make_folder(folder, n, seed):
    """n images of mixed sizes (up to 400 x 300) and formats; every 50th is broken."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    broken = []
    for i in range(n):
        if i % 50 == 7:
            (folder / f"{i:04d}.jpg").write_bytes(rng.bytes(int(rng.integers(0, 2000))))
            broken.append(f"{i:04d}.jpg")
            continue
        h, w = int(rng.integers(24, 300)), int(rng.integers(24, 400))
        base = rng.integers(0, 256, (1, 1, 3), dtype=np.uint8)
        image = np.broadcast_to(base, (h, w, 3)).copy()  # flat colour: fast to write and read
        Image.fromarray(image).save(folder / f"{i:04d}.{'png' if i % 3 else 'jpg'}")
    return broken


def _run_load(folder, checkpoint, out):
    args = [sys.executable, "-c", LOAD_SCRIPT, str(folder), "--checkpoint", str(checkpoint)]
    args += ["--image_size", "64", "--batch_size", "32", "--output", str(out), "--detector", "none"]
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    rss = int(done.stdout.split("MAXRSS")[-1])
    return done, rss


def test_a_folder_of_1000_images_completes_in_bounded_memory(tmp_path, tiny_checkpoint):
    broken = _make_folder(tmp_path / "big", 1000, 0)
    _make_folder(tmp_path / "small", 100, 1)
    big, big_rss = _run_load(tmp_path / "big", tiny_checkpoint[0], tmp_path / "big.jsonl")
    small, small_rss = _run_load(tmp_path / "small", tiny_checkpoint[0], tmp_path / "small.jsonl")
    assert big.returncode == 1, big.stderr[-2000:]  # the broken ones fail the run...
    assert "1000 images, 980 faces predicted, 20 failed" in big.stderr
    for name in broken[:20]:
        assert f"failed: {name}" in big.stderr
    records = [json.loads(line) for line in (tmp_path / "big.jsonl").read_text().splitlines()]
    assert len(records) == 1000 and sum(r["error"] is not None for r in records) == 20
    # 10x the images may not cost more than a few crops' worth of memory (ru_maxrss is in KiB):
    # the 1,000 decoded images alone would be ~170 MB.
    assert big_rss - small_rss < 60 * 1024, (big_rss, small_rss)


def test_without_boxes_the_detector_finds_every_face_of_a_group_photo(tmp_path, tiny_checkpoint):
    pytest.importorskip("mtcnn")
    from sphm_jax.data import sample_photos  # pylint: disable=g-import-not-at-top
    from sphm_jax.data.boxes import match  # pylint: disable=g-import-not-at-top

    (_, astronaut, a_box), (_, grace, g_box) = sample_photos.shipped_photos()[:2]
    group = np.zeros((600, 1024, 3), np.uint8)
    group[:512, :512], group[:, 512:] = astronaut, grace
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(group).save(folder / "group.png")
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(folder / "wall.png")
    out = tmp_path / "out.jsonl"
    args = [str(folder), "--checkpoint", str(tiny_checkpoint[0]), "--image_size", "64"]
    assert predict.main([*args, "--output", str(out), "--min_score", "2"]) == 0  # none "failed"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["image"], r["face"]) for r in records] == [
        ("group.png", 0),
        ("group.png", 1),
        ("wall.png", None),
    ]
    faces = np.concatenate([a_box, g_box + [512, 0, 512, 0]])
    assert sorted(match(np.array([r["box"] for r in records[:2]]), faces)) == [0, 1]
    assert records[0]["unreliable"] == list(range(68))  # every score is below 2
    assert records[2]["error"] == "no face detected"
