"""Export a checkpoint as one artefact that runs without this package (sphm_jax.toolkit.artefacts).

python -m sphm_jax.export --checkpoint WORKDIR_OR_CKPT --output DIR --format onnx
"""

from __future__ import annotations

import argparse
import json
import sys

from sphm_jax import heatmaps
from sphm_jax.toolkit.artefacts import FORMATS, INPUT_NAME, exportable_fn, file_bytes, write
from sphm_jax.training import checkpoints, xla_cpu


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m sphm_jax.export",
        description="Write the network and its decoder as one StableHLO, ONNX, TFLite or "
        "SavedModel artefact: uint8 crops in, landmarks in crop pixels and scores out.",
    )
    parser.add_argument("--checkpoint", required=True, help="training workdir or checkpoint dir")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    parser.add_argument("--output", required=True, help="directory to write the artefact to")
    parser.add_argument("--format", required=True, choices=FORMATS, help="artefact format")
    parser.add_argument(
        "--decoder",
        default=None,
        choices=heatmaps.METHODS,
        help="default: the workdir's config, else local_softargmax",
    )
    parser.add_argument("--window", type=int, default=None, help="local soft-argmax window")
    parser.add_argument("--temperature", type=float, default=None, help="soft-argmax tau")
    parser.add_argument(
        "--image_size",
        type=int,
        default=None,
        help="crop side S (default: the workdir's config, else 256)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="a fixed batch (default: dynamic; tflite: 1, its converter needs a fixed one)",
    )
    parser.add_argument("--float16", action="store_true", help="tflite only: float16 weights")
    return parser.parse_args(argv)


def _describe(args, settings, model, path) -> dict:
    s = settings["image_size"]
    k = model.num_landmarks
    batch = args.batch or (1 if args.format == "tflite" else "N")
    return {
        "format": args.format,
        "file": path.name,
        "checkpoint": str(args.checkpoint),
        "inputs": {INPUT_NAME: {"dtype": "uint8", "shape": [batch, s, s, 3], "layout": "RGB"}},
        "outputs": {
            "landmarks": {"dtype": "float32", "shape": [batch, k, 2], "unit": "crop pixels"},
            "scores": {"dtype": "float32", "shape": [batch, k]},
        },
        **{key: settings[key] for key in ("decoder", "window", "temperature")},
    }


def main(argv=None):
    args = _parse_args(argv)
    try:
        if args.batch is not None and args.batch < 1:
            raise ValueError(f"--batch must be >= 1, got {args.batch}")
        model, variables, settings = checkpoints.load_checkpoint(
            args.checkpoint,
            args.step,
            dtype="float32",
            image_size=args.image_size,
            decoder=args.decoder,
            window=args.window,
            temperature=args.temperature,
        )
        defaults = {
            "image_size": 256,
            "decoder": "local_softargmax",
            "window": 5,
            "temperature": 10.0,
        }
        settings = {**defaults, **settings}
        fn = exportable_fn(
            model,
            variables,
            decoder=settings["decoder"],
            window=settings["window"],
            temperature=settings["temperature"],
        )
        path = write(fn, args.format, settings["image_size"], args.output, args.batch, args.float16)
        description = _describe(args, settings, model, path)
        (path.parent / f"{path.name}.json").write_text(json.dumps(description, indent=2))
        print(f"wrote {path} ({file_bytes(path) / 1e6:.1f} MB): {json.dumps(description)}")
    except (OSError, ImportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    xla_cpu.apply()  # before JAX starts: XLA reads its flags once
    sys.exit(main())
