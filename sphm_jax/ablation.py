"""The paper's Tables 1-3 on any config: every row over several seeds, equal budgets, paired tests.

  python -m sphm_jax.ablation --config configs/synthetic.py --workdir DIR [--seeds 0,1,2] \
      [--config.num_train_steps=... ...]

Table 2's rows (configs/ablation.py): baseline, hm (+ proposed heatmaps),
hm_no_lsa (the hm models decoded by argmax + 0.25 instead of the local
soft-argmax, so the two rows differ only in the decoder), siamese. Each
trained row is a normal training run in DIR/<row>/seed<k> (it resumes), all
with the config's steps, batch and seed. Every model is then decoded by
sphm_jax.evaluate with every decoder and the windows of Table 3, which also
gives Table 1 (global against local soft-argmax). DIR/ablation.json holds
{"nmes": {row: [test NME per seed]}, "paired": {...}, "table1": ..., "table3": ...}.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import scipy.stats
import tqdm
from absl import app, flags

from sphm_jax import geometry, heatmaps, inference
from sphm_jax.data import input_pipeline
from sphm_jax.toolkit import plots
from sphm_jax.training import checkpoints, config_loader, mesh, scoring, train, xla_cpu
from sphm_jax.training.configs import ablation as rows

PAPER_WFLW = {"baseline": 4.20, "hm": 3.90, "hm_no_lsa": 4.00, "siamese": 3.72}
LABELS = {
    "baseline": "Baseline (quantized targets, argmax + 0.25)",
    "hm": "+ proposed heatmaps",
    "hm_no_lsa": "+ proposed heatmaps, w/o local soft-argmax",
    "siamese": "+ Siamese training",
}
# Rows read from another row's models with another decoder: (model row, decoder).
DECODED_FROM = {"hm_no_lsa": ("hm", "argmax_quarter")}
# The paper's expected ordering, worse first: each pair is tested across seeds.
PAIRS = (("baseline", "hm_no_lsa"), ("hm_no_lsa", "hm"), ("hm", "siamese"), ("baseline", "siamese"))
WINDOWS = (3, 5, 7)  # Table 3; "none" is the global soft-argmax


def row_source(row: str, base) -> tuple[str, str]:
    """(the trained row whose models a Table 2 row reads, the decoder it reads them with)."""
    return DECODED_FROM.get(row, (row, rows.ROWS[row].get("decoder", base.decoder)))


def model_row(row: str) -> str:
    return DECODED_FROM.get(row, (row, None))[0]


def row_config(base, row: str, seed: int):
    config = base.copy_and_resolve_references()
    config.update(rows.ROWS[model_row(row)])
    config.seed = seed
    return config


def collect_points(workdir: str, base, decoders, window: int, dp) -> dict:
    """scoring.collect of one model's points by each decoder on the config's eval split.

    Crops and batches as the config (the rows share its image size and crop), window as given,
    temperature the workdir's.
    """
    builder = input_pipeline.load_builder(base.eval_dataset or base.dataset, base)
    model, variables, settings = checkpoints.load_checkpoint(workdir, window=window)
    run = inference.landmark_fn(
        model,
        variables,
        dp,
        decoders=tuple(decoders),
        window=settings["window"],
        temperature=settings.get("temperature", 10.0),
    )
    return scoring.collect(scoring.predict_split(run, builder, base.eval_splits[0], base, dp))


def decode_all(config, workdirs: dict, window: int, dp) -> dict:
    """Every model decoded with every decoder at one window: {row: {decoder: test NME}}."""
    decoded = {}
    for row, workdir in workdirs.items():
        collected = collect_points(workdir, config, heatmaps.METHODS, window, dp)
        decoded[row] = {
            d: float(
                np.mean(scoring.split_nmes(collected, collected["outputs"][d], config.nme_norm))
            )
            for d in heatmaps.METHODS
        }
    return decoded


def row_nme(row: str, decoded: dict, base) -> float:
    """A Table 2 row's NME from the models decoded at the config's window."""
    source, decoder = row_source(row, base)
    return decoded[source][decoder]


def paired(nmes: dict) -> dict:
    """Per-seed differences (worse row minus better row) and a two-sided paired t-test."""
    out = {}
    for worse, better in PAIRS:
        if worse not in nmes or better not in nmes:
            continue
        if len(nmes[worse]) < 2 or len(nmes[worse]) != len(nmes[better]):
            continue  # a paired test needs the same seeds, at least two
        diffs = np.asarray(nmes[worse]) - np.asarray(nmes[better])
        test = scipy.stats.ttest_rel(nmes[worse], nmes[better])
        out[f"{worse} - {better}"] = {
            "diffs": diffs.tolist(),
            "mean": float(diffs.mean()),
            "t": float(test.statistic),
            "p": float(test.pvalue),
            "better_in_seeds": int(np.sum(diffs > 0)),
        }
    return out


def _mean_std(values) -> str:
    v = 100 * np.asarray(values)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def format_table(nmes: dict, tests: dict) -> str:
    lines = [
        "| Table 2 row | NME (%) mean ± std over seeds | per seed (%) | paper, WFLW NME_ic (%) |",
        "|---|---|---|---|",
    ]
    for row, values in nmes.items():
        per_seed = ", ".join(f"{100 * v:.2f}" for v in values)
        lines.append(
            f"| {LABELS[row]} | {_mean_std(values)} | {per_seed} | {PAPER_WFLW[row]:.2f} |"
        )
    lines += ["", "| paired difference | mean (% NME) | per seed | seeds in favour | t | p |"]
    lines.append("|---|---|---|---|---|---|")
    for name, t in tests.items():
        per_seed = ", ".join(f"{100 * d:+.2f}" for d in t["diffs"])
        lines.append(
            f"| {name} | {100 * t['mean']:+.3f} | {per_seed} | {t['better_in_seeds']}/"
            f"{len(t['diffs'])} | {t['t']:.2f} | {t['p']:.3g} |"
        )
    return "\n".join(lines)


def format_decoder_tables(table1: dict, table3: dict) -> str:
    lines = ["| model | decoder | NME (%) mean ± std over seeds |", "|---|---|---|"]
    for row, by_decoder in table1.items():
        lines += [f"| {row} | {d} | {_mean_std(v)} |" for d, v in by_decoder.items()]
    lines += ["", "| model | window | NME (%) mean ± std over seeds |", "|---|---|---|"]
    for row, by_window in table3.items():
        lines += [f"| {row} | {w} | {_mean_std(v)} |" for w, v in by_window.items()]
    return "\n".join(lines)


def trained_rows(table2_rows) -> list[str]:
    return sorted({model_row(r) for r in table2_rows}, key=list(rows.ROWS).index)


def run_workdir(workdir: str, row: str, seed: int) -> str:
    return os.path.join(workdir, row, f"seed{seed}")


def run(base, workdir: str, seeds, table2_rows) -> dict:
    """Trains every needed row for every seed, decodes them all; the ablation.json content."""
    trained = trained_rows(table2_rows)
    nmes = {row: [] for row in table2_rows}
    table1 = {r: {} for r in ("hm", "siamese") if r in trained}
    table3 = {r: {} for r in table1}
    dp = mesh.data_parallel(jax.devices())
    for seed in tqdm.tqdm(seeds, unit="seed", disable=None):
        workdirs = {}
        for row in trained:
            workdirs[row] = run_workdir(workdir, row, seed)
            train.train_and_evaluate(row_config(base, row, seed), workdirs[row])
        by_window = {
            w: decode_all(base, workdirs, w, dp)
            for w in sorted({*WINDOWS, base.window})  # Table 2 reads the config's own window
        }
        decoded = by_window[base.window]
        for row in table2_rows:
            nmes[row].append(row_nme(row, decoded, base))
        for row in table1:
            for d in ("local_softargmax", "global_softargmax", "argmax", "argmax_quarter", "dark"):
                table1[row].setdefault(d, []).append(decoded[row][d])
            table3[row].setdefault("none (global soft-argmax)", []).append(
                decoded[row]["global_softargmax"]
            )
            for w in WINDOWS:
                table3[row].setdefault(f"{w}x{w}", []).append(by_window[w][row]["local_softargmax"])
    return {"nmes": nmes, "paired": paired(nmes), "table1": table1, "table3": table3}


def row_predictions(base, workdirs: dict, table2_rows) -> dict:
    """Per Table 2 row, its models' points and per-image NMEs on the eval split (one seed)."""
    dp = mesh.data_parallel(jax.devices())
    out = {}
    for row in trained_rows(table2_rows):
        decoders = ("local_softargmax", "argmax_quarter")
        collected = collect_points(workdirs[row], base, decoders, base.window, dp)
        for r in (r for r in table2_rows if model_row(r) == row):
            points = collected["outputs"][row_source(r, base)[1]]
            out[r] = {
                "points": points,
                "nmes": scoring.split_nmes(collected, points, base.nme_norm),
                "gt": collected["landmarks"],
            }
    return out


def eval_crops(base, indices) -> dict:
    """{index: (crop image, original -> crop matrix)} of the eval split's examples `indices`."""
    builder = input_pipeline.load_builder(base.eval_dataset or base.dataset, base)
    wanted, found, seen = set(int(i) for i in indices), {}, 0
    for batch in input_pipeline.eval_batches(
        builder,
        base.eval_splits[0],
        global_batch_size=base.batch_size,
        image_size=base.image_size,
        crop_scale=base.crop_scale,
    ):
        for i in np.flatnonzero(batch["mask"] > 0):
            if seen in wanted:
                found[seen] = (batch["image"][i], batch["crop"][i])
            seen += 1
        if len(found) == len(wanted):
            break
    return found


def figures(base, predictions: dict, out_dir: str, faces: int = 6) -> list[str]:
    """ced.png (every row) and hardest_faces.png (the faces hardest on average, under each row)."""
    os.makedirs(out_dir, exist_ok=True)
    ced_path = os.path.join(out_dir, "ced.png")
    curves = {LABELS[r]: p["nmes"] for r, p in predictions.items()}
    plots.ced_figure(curves, base.auc_threshold, ced_path, f"CED, {base.eval_splits[0]}")
    shown = [r for r in ("baseline", "hm", "siamese") if r in predictions] or list(predictions)
    hardest = np.argsort(-np.mean([predictions[r]["nmes"] for r in shown], 0))[:faces]
    crops = eval_crops(base, hardest)
    images, preds, gts, titles = [], [], [], []
    for i in hardest:
        image, crop = crops[int(i)]
        for r in shown:
            images.append(image)
            preds.append(geometry.transform_points(predictions[r]["points"][i], crop))
            gts.append(geometry.transform_points(predictions[r]["gt"][i], crop))
            titles.append(f"{r}: {100 * predictions[r]['nmes'][i]:.1f}%")
    faces_path = os.path.join(out_dir, "hardest_faces.png")
    plots.prediction_grid(images, preds, gts, titles, faces_path, columns=len(shown))
    return [ced_path, faces_path]


FLAGS = flags.FLAGS


def main(argv):
    del argv
    result = run(FLAGS.config, FLAGS.workdir, [int(s) for s in FLAGS.seeds], FLAGS.rows)
    print(format_table(result["nmes"], result["paired"]))
    print()
    print(format_decoder_tables(result["table1"], result["table3"]))
    with open(os.path.join(FLAGS.workdir, "ablation.json"), "w") as f:
        json.dump({**result, "config": FLAGS.config.to_dict()}, f, indent=2, default=str)
    seed = int(FLAGS.seeds[0])
    workdirs = {r: run_workdir(FLAGS.workdir, r, seed) for r in trained_rows(FLAGS.rows)}
    predictions = row_predictions(FLAGS.config, workdirs, FLAGS.rows)
    paths = figures(FLAGS.config, predictions, os.path.join(FLAGS.workdir, "figures"))
    print(f"figures of seed {seed}: {', '.join(paths)}")


if __name__ == "__main__":
    xla_cpu.apply()  # before JAX starts: XLA reads its flags once
    flags.DEFINE_string("workdir", None, "One sub-directory per row and seed goes here.")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds per row.")
    flags.DEFINE_list("rows", list(LABELS), "Rows of Table 2 to report.")
    config_loader.DEFINE_config_file("config", None, "Base configuration.", lock_config=False)
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
