"""Scores checkpoints on a TFDS split with the dataset's protocol: python -m sphm_jax.evaluate.

  python -m sphm_jax.evaluate --checkpoint WORKDIR_OR_CHECKPOINT [--checkpoint ...] \
      --dataset wflw [--decoders local_softargmax,argmax_quarter,...] [--output_dir DIR]

Each checkpoint runs once per split; every requested decoder reads the same
heatmaps, so one run fills a row of the paper's Tables 1 and 3 per decoder.
The protocol (NME normalisations, AUC cut-off, failure threshold, splits,
subsets) comes from sphm_jax.data.protocols. Prints the tables and writes
results.json, table.md, a CED curve per split, the worst and best faces, and
the heatmaps of the worst face into --output_dir.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import sys

import jax
import ml_collections
import numpy as np
import tensorflow as tf
import tqdm
from etils import epath

from sphm_jax import geometry, heatmaps, inference, layouts
from sphm_jax.data import input_pipeline, protocols
from sphm_jax.data.boxes import InputError
from sphm_jax.toolkit import plots
from sphm_jax.training import mesh, paths, scoring, xla_cpu
from sphm_jax.training.checkpoints import WORKDIR_SETTINGS, load_checkpoint


@dataclasses.dataclass(frozen=True)
class Model:
    label: str
    model: object
    variables: object
    settings: dict  # image_size, crop_scale, window, temperature


def load(path: str, label: str | None, overrides: dict) -> Model:
    """A checkpoint and its crop/decoder settings: the workdir's config.json, then the flags."""
    model, variables, settings = load_checkpoint(path, **overrides)
    settings = {"image_size": 256, "crop_scale": geometry.CROP_SCALE, **settings}
    settings.pop("decoder", None)  # the decoders come from --decoders
    return Model(label or paths.path(path).name, model, variables, settings)


class Extremes:
    """The k worst and k best faces seen, with their crops (bounded memory over any split)."""

    def __init__(self, k: int):
        self.k, self.worst, self.best, self.seen = k, [], [], 0

    def add(self, nme: float, item: tuple) -> None:
        self.seen += 1
        entry = (nme, self.seen, item)
        heapq.heappush(self.worst, entry)
        if len(self.worst) > self.k:
            heapq.heappop(self.worst)
        heapq.heappush(self.best, (-nme, self.seen, item))
        if len(self.best) > self.k:
            heapq.heappop(self.best)

    def ranked(self):
        """(worst first, best first) lists of (nme, item)."""
        worst = sorted(self.worst, key=lambda e: -e[0])
        best = sorted(((-n, s, i) for n, s, i in self.best), key=lambda e: e[0])
        return [(n, i) for n, _, i in worst], [(n, i) for n, _, i in best]


def make_runner(m: Model, args, num_landmarks: int, dp):
    """run(global batch) -> {decoder: points, "scores": ...} of every --decoders, compiled once."""
    permutation = layouts.get_layout(num_landmarks).flip_permutation if args.flip else None
    return inference.landmark_fn(
        m.model,
        m.variables,
        dp,
        decoders=args.decoders,
        window=m.settings.get("window", 5),
        temperature=m.settings.get("temperature", 10.0),
        flip_permutation=permutation,
    )


def evaluate_model(m: Model, run, dp, builder, split: str, args, protocol, keep_k: int):
    """(collected predictions of every decoder, Extremes of the first decoder) on one split."""
    config = ml_collections.ConfigDict(
        {
            "batch_size": args.batch_size,
            "image_size": m.settings["image_size"],
            "crop_scale": m.settings["crop_scale"],
        }
    )
    extremes = Extremes(keep_k)
    first = args.decoders[0]

    def note_extremes(p: scoring.Predicted):
        batch, keep = p.batch, p.keep
        truth = {
            "landmarks": p.landmarks,
            "visible": batch["visible"][keep],
            "bbox": batch["bbox"][keep],
        }
        nmes = scoring.split_nmes(truth, p.outputs[first][keep], protocol.norms[0])
        in_crop = geometry.transform_points(p.outputs[first][keep], batch["crop"][keep])
        for i, nme in enumerate(nmes):
            item = (batch["image"][keep][i], np.asarray(in_crop[i]), batch["landmarks"][keep][i])
            name = batch["image_id"][keep][i]
            extremes.add(
                float(nme), item + (name.decode() if isinstance(name, bytes) else str(name),)
            )

    total = builder.info.splits[split].num_examples
    with tqdm.tqdm(total=total, desc=f"{m.label} {split}", unit="face", disable=None) as bar:

        def observed(predicted):
            for p in predicted:
                note_extremes(p)
                bar.update(int(p.keep.sum()))
                yield p

        predicted = scoring.predict_split(run, builder, split, config, dp)
        collected = scoring.collect(observed(predicted), protocol.subset_features)
    return collected, extremes


def score_all(collected, decoders, protocol) -> dict:
    """{decoder: {norm: score dict}} of one split."""
    return {
        d: {
            norm: scoring.score(
                scoring.split_nmes(collected, collected["outputs"][d], norm),
                collected["subsets"],
                protocol.auc_threshold,
                protocol.failure_threshold,
            )
            for norm in protocol.norms
        }
        for d in decoders
    }


def format_table(results: dict, norm: str, protocol) -> str:
    """A markdown table like the paper's: NME (%) per split and subset, then AUC and FR of the last split."""
    labels = [label for label, _ in protocol.splits]
    last = labels[-1]
    auc_key = f"auc@{protocol.auc_threshold:g}"
    fr_key = f"failure_rate@{protocol.failure_threshold:g}"
    any_row = next(iter(next(iter(results.values())).values()))
    subsets = [k for k in any_row[last][norm] if isinstance(any_row[last][norm][k], dict)]
    header = [
        "model",
        "decoder",
        *labels,
        *subsets,
        f"AUC@{protocol.auc_threshold:g}",
        f"FR@{protocol.failure_threshold:g}",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, by_decoder in results.items():
        for decoder, by_split in by_decoder.items():
            s = {label: by_split[label][norm] for label in labels}
            cells = [f"{100 * s[label]['nme']:.2f}" for label in labels]
            cells += [f"{100 * s[last][sub]['nme']:.2f}" for sub in subsets]
            cells += [f"{100 * s[last][auc_key]:.2f}", f"{100 * s[last][fr_key]:.2f}"]
            lines.append("| " + " | ".join([model, decoder, *cells]) + " |")
    return "\n".join(lines)


def write_pictures(
    out: epath.Path, split_label: str, curves, extremes: Extremes, m: Model, protocol
):
    safe = split_label.replace(" ", "_")
    plots.ced_figure(
        curves,
        protocol.auc_threshold,
        out / f"ced_{safe}.png",
        f"CED, {split_label} ({protocol.norms[0]})",
    )
    worst, best = extremes.ranked()
    faces = worst + best
    if faces:
        plots.prediction_grid(
            [f[1][0] for f in faces],
            [f[1][1] for f in faces],
            [f[1][2] for f in faces],
            [
                f"{'worst' if i < len(worst) else 'best'} {100 * f[0]:.2f}% {f[1][3][-18:]}"
                for i, f in enumerate(faces)
            ],
            out / f"faces_{safe}.png",
            columns=max(1, len(worst)),
        )
        crop = worst[0][1][0]
        hm = inference.network_heatmaps(m.model.apply, m.variables, crop[None])[0]
        points = heatmaps.decode(hm, "local_softargmax")
        plots.heatmap_figure(
            crop,
            hm,
            np.asarray(points),
            out / f"heatmaps_{safe}.png",
            title=f"worst face: {worst[0][1][3]}",
        )


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m sphm_jax.evaluate",
        description="Score checkpoints on a TFDS split with the dataset's protocol.",
    )
    parser.add_argument(
        "--checkpoint", action="append", required=True, help="workdir or checkpoint dir; repeatable"
    )
    parser.add_argument("--label", action="append", help="a name per --checkpoint, in order")
    parser.add_argument(
        "--dataset",
        required=True,
        help="TFDS name of tfds_builders/, e.g. wflw or ibug_300w/split2",
    )
    parser.add_argument("--splits", help="comma-separated TFDS splits (default: the protocol's)")
    parser.add_argument(
        "--decoders",
        default="local_softargmax",
        help=f"comma-separated, from {', '.join(heatmaps.METHODS)}; or 'all'",
    )
    parser.add_argument("--data_dir")
    parser.add_argument("--manual_dir")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, help="default: the workdir's, else 256")
    parser.add_argument("--crop_scale", type=float, help="default: the workdir's, else 256/220")
    parser.add_argument("--window", type=int)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--flip", action="store_true", help="average with the mirrored crop")
    parser.add_argument("--output_dir", help="results.json, table.md and the figures")
    parser.add_argument("--faces", type=int, default=4, help="worst and best faces to draw")
    args = parser.parse_args(argv)
    args.decoders = heatmaps.METHODS if args.decoders == "all" else tuple(args.decoders.split(","))
    for d in args.decoders:
        if d not in heatmaps.METHODS:
            parser.error(f"--decoders: unknown decoder {d!r}; choose from {heatmaps.METHODS}")
    if args.label and len(args.label) != len(args.checkpoint):
        parser.error(f"{len(args.label)} --label for {len(args.checkpoint)} --checkpoint")
    return args


def _check_inputs(args, protocol) -> tuple:
    """(models, builder): the checkpoints and the dataset, checked to fit the protocol."""
    overrides = {k: getattr(args, k) for k in WORKDIR_SETTINGS if hasattr(args, k)}
    labels = args.label or [None] * len(args.checkpoint)
    models = [load(p, labels[i], overrides) for i, p in enumerate(args.checkpoint)]
    builder = input_pipeline.load_builder(
        args.dataset,
        ml_collections.ConfigDict({"data_dir": args.data_dir, "manual_dir": args.manual_dir}),
    )
    num_landmarks = builder.info.features["landmarks"].shape[0]
    for m in models:
        if m.model.num_landmarks != num_landmarks:
            raise InputError(
                f"{m.label}: predicts {m.model.num_landmarks} landmarks, "
                f"{args.dataset} has {num_landmarks}"
            )
    parts = [p.split("[")[0] for _, s in protocol.splits for p in s.split("+")]
    missing = [p for p in parts if p not in builder.info.splits]
    if missing:
        raise InputError(
            f"{args.dataset} has no split {missing}; it has {sorted(builder.info.splits)}"
        )
    return models, builder


def evaluate_all(models, builder, args, protocol, out) -> dict:
    """{label: {decoder: {split label: {norm: scores}}}}; the figures go to `out`."""
    results = {m.label: {d: {} for d in args.decoders} for m in models}
    dp = mesh.data_parallel(jax.devices())
    num_landmarks = builder.info.features["landmarks"].shape[0]
    runners = {m.label: make_runner(m, args, num_landmarks, dp) for m in models}
    for label, split in protocol.splits:
        curves, first_extremes = {}, None
        for m in models:
            collected, extremes = evaluate_model(
                m, runners[m.label], dp, builder, split, args, protocol, args.faces
            )
            first_extremes = first_extremes or (extremes, m)
            for d, by_norm in score_all(collected, args.decoders, protocol).items():
                results[m.label][d][label] = by_norm
                curves[f"{m.label} {d}"] = scoring.split_nmes(
                    collected, collected["outputs"][d], protocol.norms[0]
                )
        if out and jax.process_index() == 0:
            write_pictures(out, label, curves, *first_extremes, protocol)
    return results


def main(argv=None) -> int:
    args = _parse_args(argv)
    tf.config.set_visible_devices([], "GPU")
    protocol = protocols.get(args.dataset)
    if args.splits:
        protocol = dataclasses.replace(
            protocol, splits=tuple((s, s) for s in args.splits.split(","))
        )
    try:
        models, builder = _check_inputs(args, protocol)
        out = paths.path(args.output_dir) if args.output_dir else None
    except (InputError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if out:
        out.mkdir(parents=True, exist_ok=True)
    results = evaluate_all(models, builder, args, protocol, out)
    tables = [
        f"NME normalised by {norm} (%), {args.dataset}\n\n" + format_table(results, norm, protocol)
        for norm in protocol.norms
    ]
    print("\n\n".join(tables))
    if out and jax.process_index() == 0:
        summary = {"dataset": args.dataset, "protocol": dataclasses.asdict(protocol)}
        (out / "results.json").write_text(json.dumps({**summary, "results": results}, indent=2))
        (out / "table.md").write_text("\n\n".join(tables) + "\n")
        print(f"wrote {out}/results.json, table.md and the figures", file=sys.stderr)
    return 0


if __name__ == "__main__":
    xla_cpu.apply()  # before JAX starts: XLA reads its flags once
    sys.exit(main())
