"""What a run measures: the measurements of each --what side by side, the sweeps, the summary."""

from __future__ import annotations

import json

from sphm_jax.benchmark.export_timings import export_artefacts
from sphm_jax.benchmark.jax_timings import jax_decode, jax_eval, jax_input, jax_loop, jax_train
from sphm_jax.benchmark.records import decode_heatmaps, interleaved_medians
from sphm_jax.benchmark.torch_timings import torch_decode, torch_eval, torch_train

WHAT = ("train", "eval", "decode", "input")  # "all"; "loop" (minutes: whole epochs) on request


def _ratio(a, b):
    return a / b if a and b else None


def summary(records: list[dict]) -> dict:
    """The ratios the targets are stated in, from the records of one run."""

    def rate(what, impl, **match):
        for r in records:
            if (
                r["what"] == what
                and r["impl"] == impl
                and all(r.get(k) == v for k, v in match.items())
            ):
                return r["images_per_s"]
        return None

    cfg_decoder = next((r["method"] for r in records if r["what"] == "decode"), None)
    return {
        "what": "summary",
        "train_jax_over_torch": _ratio(rate("train", "jax"), rate("train", "torch")),
        "decode_jax_over_torch": _ratio(
            rate("decode", "jax", method=cfg_decoder), rate("decode", "torch")
        ),
        "decode_time_over_max": _ratio(
            rate("decode", "jax", method="max"), rate("decode", "jax", method=cfg_decoder)
        ),
        "input_over_train": _ratio(rate("input", "jax"), rate("train", "jax")),
        "loop_over_train": _ratio(rate("loop", "jax"), rate("train", "jax")),
        "eval_jax_over_torch": _ratio(rate("eval", "jax"), rate("eval", "torch")),
    }


def parse_sweep(text: str) -> tuple[str, list]:
    """'model.num_stacks=1,2,4' -> ('model.num_stacks', [1, 2, 4])."""
    field, sep, values = text.partition("=")
    if not sep or not values:
        raise ValueError(f"--sweep wants FIELD=V1,V2,..., got {text!r}")
    return field, [json.loads(v) for v in values.split(",")]


def swept(config, field: str, value):
    """A copy of config with field (dotted) set to value; heatmap_size follows image_size."""
    config = config.copy_and_resolve_references()
    with config.unlocked():
        if field == "image_size":
            config.heatmap_size = value * config.heatmap_size // config.image_size
        *parents, leaf = field.split(".")
        node = config
        for name in parents:
            node = node[name]
        if leaf not in node:
            raise ValueError(f"--sweep: the config has no field {field!r}")
        node[leaf] = value
    return config


def _measured(setups, repeats: int):
    """Records of [(call, to_record)], their calls timed side by side."""
    seconds = interleaved_medians([call for call, _ in setups], repeats)
    return [to_record(seconds=t) for (_, to_record), t in zip(setups, seconds)]


def run(config, what: str, reference: str, repeats: int, **options):
    """Yields every measurement of `what` ("all": each), jax and, on request, torch side by side."""
    whats = {"all": WHAT, "sweep": ()}.get(what, (what,))
    k = options.get("num_landmarks", 68)
    if "input" in whats:
        yield jax_input(config, repeats, options.get("input_batches", 20))
    if "decode" in whats:
        maps = decode_heatmaps(config, k, options.get("decode_faces", 64))
        setups = jax_decode(config, maps)
        if reference == "torch":
            setups.append(torch_decode(config, maps))
        yield from _measured(setups, repeats)
    if "eval" in whats:
        setups = [jax_eval(config, k)]
        if reference == "torch":
            setups.append(torch_eval(config, k, options.get("torch_channels_last")))
        yield from _measured(setups, repeats)
    if "loop" in whats:
        yield jax_loop(config, options.get("loop_steps", 0))
    if "export" in whats:
        yield from export_artefacts(config, k, repeats)
    if "train" in whats:
        setups = [jax_train(config, k)]
        if reference == "torch":
            flops = setups[0][1](seconds=1.0)["flops_per_step"]
            channels_last = options.get("torch_channels_last")
            setups.append(torch_train(config, k, flops, channels_last))
        yield from _measured(setups, repeats)
    for text in options.get("sweep", ()):
        field, values = parse_sweep(text)
        setups = [jax_train(swept(config, field, v), k) for v in values]
        for r, v in zip(_measured(setups, repeats), values):
            yield {**r, "sweep": field, "value": v}
