"""Scoring a split: a predict function in, NME / AUC / failure rate out (big_vision's evaluators).

Training, sphm_jax.evaluate and the ablation hand it their own predict function
(points per decoder from a global batch); every example of the split is seen once,
over every process, and scored against its ground truth in original image pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

import numpy as np

from sphm_jax import geometry, metrics
from sphm_jax.data import input_pipeline
from sphm_jax.training import mesh

EVAL_KEYS = ("image", "crop")  # what a predict function reads of a batch


class Predicted(NamedTuple):
    """One process-local batch and what the predict function made of it (numpy)."""

    batch: dict
    outputs: dict  # e.g. points per decoder, in original image pixels
    keep: np.ndarray  # real examples, not the padding of the last batch
    landmarks: np.ndarray  # ground truth of the kept examples, original image pixels


def predict_split(predict_fn: Callable, builder, split, config, dp) -> Iterator[Predicted]:
    """Every example of `split` once through predict_fn(global batch) -> dict sharded on "data"."""
    steps = input_pipeline.eval_steps(builder, split, config.batch_size)
    batches = input_pipeline.eval_batches(
        builder,
        split,
        global_batch_size=config.batch_size,
        image_size=config.image_size,
        crop_scale=config.crop_scale,
    )
    for _ in range(steps):
        batch = next(batches)
        outputs = predict_fn(mesh.to_global(batch, EVAL_KEYS, dp.data))
        outputs = {k: mesh.to_local(v, dp.mesh) for k, v in outputs.items()}
        keep = batch["mask"] > 0
        inverse = np.asarray(geometry.invert(batch["crop"][keep]))
        gt = np.asarray(geometry.transform_points(batch["landmarks"][keep], inverse))
        yield Predicted(batch, outputs, keep, gt)


def _subset_columns(batch, features) -> dict:
    """The metadata features to score per value, nested ones (WFLW's attributes) flattened."""
    columns = {}
    for f in features:
        value = batch[f]
        if isinstance(value, dict):
            columns.update({f"{f}/{k}": np.asarray(v) for k, v in value.items()})
        else:
            columns[f] = np.asarray(value)
    return columns


def _gather(parts) -> np.ndarray:
    values = np.concatenate(parts)
    if values.dtype.kind in "SUO":
        return np.asarray(mesh.gather_strings(values))
    return mesh.gather(values)


def collect(predicted: Iterable[Predicted], subset_features=()) -> dict:
    """{"outputs", "landmarks", "visible", "bbox", "subsets": {feature: values}} over processes."""
    local = {"outputs": {}, "landmarks": [], "visible": [], "bbox": [], "subsets": {}}
    for p in predicted:
        for k, v in p.outputs.items():
            local["outputs"].setdefault(k, []).append(v[p.keep])
        local["landmarks"].append(p.landmarks)
        local["visible"].append(p.batch["visible"][p.keep])
        local["bbox"].append(p.batch["bbox"][p.keep])
        for k, v in _subset_columns(p.batch, subset_features).items():
            local["subsets"].setdefault(k, []).append(v[p.keep])
    return {
        "outputs": {k: _gather(v) for k, v in local["outputs"].items()},
        "subsets": {k: _gather(v) for k, v in local["subsets"].items()},
        **{k: _gather(local[k]) for k in ("landmarks", "visible", "bbox")},
    }


def split_nmes(collected: dict, points, norm: str) -> np.ndarray:
    """Per-image NME of predicted points against the collected ground truth."""
    return np.asarray(
        metrics.nme(
            points,
            collected["landmarks"],
            norm,
            visible=collected["visible"],
            boxes=collected["bbox"] if norm != "inter_ocular" else None,
        )
    )


def summarize(nmes: np.ndarray, auc_threshold: float, failure_threshold: float) -> dict:
    return {
        "num_examples": len(nmes),
        "nme": float(np.mean(nmes)) if len(nmes) else float("nan"),
        f"auc@{auc_threshold:g}": float(metrics.auc(nmes, auc_threshold)),
        f"failure_rate@{failure_threshold:g}": float(metrics.failure_rate(nmes, failure_threshold)),
    }


def score(nmes: np.ndarray, subsets: dict, auc_threshold: float, failure_threshold: float):
    """summarize() of the whole split and of each subset: a string value, or a set flag."""
    result = summarize(nmes, auc_threshold, failure_threshold)
    for f, values in subsets.items():
        if values.dtype.kind in "SUO":
            for name in sorted(set(values.tolist())):
                sel = values == name
                result[f"{f}={name}"] = summarize(nmes[sel], auc_threshold, failure_threshold)
            continue
        flags = values.reshape(len(values), -1)
        for col in range(flags.shape[1]):
            sel = flags[:, col] != 0
            if sel.any():
                label = f if flags.shape[1] == 1 else f"{f}[{col}]"
                result[label] = summarize(nmes[sel], auc_threshold, failure_threshold)
    return result


def evaluate(predict_fn: Callable, builder, split, config, dp) -> dict:
    """NME, AUC and failure rate of one split (and its subsets); predict_fn gives {"points": ...}."""
    collected = collect(
        predict_split(predict_fn, builder, split, config, dp), config.subset_features
    )
    nmes = split_nmes(collected, collected["outputs"]["points"], config.nme_norm)
    return score(nmes, collected["subsets"], config.auc_threshold, config.failure_threshold)
