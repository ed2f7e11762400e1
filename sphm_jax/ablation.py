"""The paper's Table 2 on any config: every row, several seeds, the same step budget; mean +- spread.

  python -m sphm_jax.ablation --config configs/synthetic.py --workdir DIR --seeds 0,1,2 \
      [--config.num_train_steps=200 ...]

Rows (configs/ablation.py): baseline, hm (+ proposed heatmaps), hm_no_lsa
(+ proposed heatmaps without the local soft-argmax), siamese (+ Siamese).
Each run is a normal training run in DIR/<row>/seed<k>, so it resumes.
"""

import json
import os

import numpy as np
import tqdm
from absl import app, flags
from ml_collections import config_flags

from configs import ablation as rows
from sphm_jax import train

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "One sub-directory per row and seed goes here.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds per row.")
flags.DEFINE_list("rows", list(rows.ROWS), "Rows of Table 2 to run.")
config_flags.DEFINE_config_file("config", None, "Base configuration.", lock_config=False)
flags.mark_flags_as_required(["config", "workdir"])

PAPER_WFLW = {"baseline": 4.20, "hm": 3.90, "hm_no_lsa": 4.00, "siamese": 3.72}
LABELS = {
    "baseline": "Baseline (quantized targets, argmax + 0.25)",
    "hm": "+ proposed heatmaps",
    "hm_no_lsa": "+ proposed heatmaps, w/o local soft-argmax",
    "siamese": "+ Siamese training",
}


def run_row(base, row: str, seed: int, workdir: str) -> float:
    config = base.copy_and_resolve_references()
    config.update(rows.ROWS[row])
    config.seed = seed
    results = train.train_and_evaluate(config, workdir)
    return results[config.eval_splits[0]]["nme"]


def format_table(nmes: dict) -> str:
    lines = [
        "| Table 2 row | NME (%) mean ± std over seeds | seeds | paper, WFLW NME_ic (%) |",
        "|---|---|---|---|",
    ]
    for row, values in nmes.items():
        v = 100 * np.asarray(values)
        lines.append(
            f"| {LABELS[row]} | {v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f} "
            f"| {len(v)} | {PAPER_WFLW[row]:.2f} |"
        )
    return "\n".join(lines)


def main(argv):
    del argv
    nmes = {row: [] for row in FLAGS.rows}
    runs = [(row, int(s)) for row in FLAGS.rows for s in FLAGS.seeds]
    for row, seed in tqdm.tqdm(runs, unit="run", disable=None):
        workdir = os.path.join(FLAGS.workdir, row, f"seed{seed}")
        nmes[row].append(run_row(FLAGS.config, row, seed, workdir))
    table = format_table(nmes)
    print(table)
    with open(os.path.join(FLAGS.workdir, "ablation.json"), "w") as f:
        json.dump({"nmes": nmes, "config": FLAGS.config.to_dict()}, f, indent=2, default=str)


if __name__ == "__main__":
    app.run(main)
