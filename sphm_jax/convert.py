"""Converts a face-alignment (PyTorch) FAN state_dict into the Flax FAN.

    python -m sphm_jax.convert --torch 2DFAN4.pth.tar --output /path/to/fan4
    python -m sphm_jax.convert --torch 2DFAN4.pth.tar --compare [--images a.jpg b.png]

Only state_dicts are read, with `torch.load(weights_only=True)`, which never
unpickles code. A TorchScript archive (older face-alignment releases) must be
turned into a state_dict once by the user, see the error message it gets.
The mapping is by name: torch `m0.b1_4.bn1.weight` is Flax
`params/m0/b1_4/bn1/scale`, `conv2.downsample.0.*` is `conv2/downsample_0/*`.
"""

import argparse
import collections.abc
import os
import re
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from sphm_jax.models import FAN, abstract_variables
from sphm_jax.training import checkpoints, paths, xla_cpu

# (torch leaf, ndim of the tensor) -> (Flax collection, Flax leaf).
_LEAVES = {
    ("weight", 4): ("params", "kernel"),
    ("weight", 1): ("params", "scale"),
    ("bias", 1): ("params", "bias"),
    ("running_mean", 1): ("batch_stats", "mean"),
    ("running_var", 1): ("batch_stats", "var"),
}
_FLAX_TO_TORCH_LEAF = {
    "kernel": "weight",
    "scale": "weight",
    "bias": "bias",
    "mean": "running_mean",
    "var": "running_var",
}
# Keys that every face-alignment FAN state_dict has, whatever its size.
_REQUIRED = (
    "conv1.weight",
    "bn1.running_var",
    "conv4.conv1.weight",
    "m0.b2_plus_1.conv1.weight",
    "conv_last0.weight",
    "l0.weight",
)
_IMAGE_SIZE = 256


class ConversionError(ValueError):
    """The input is not a readable face-alignment FAN state_dict."""


def _import_torch():
    try:
        import torch  # pylint: disable=g-import-not-at-top
    except ImportError as e:
        raise ImportError(
            "converting PyTorch checkpoints needs torch; install the CPU build: "
            "pip install torch --index-url https://download.pytorch.org/whl/cpu"
        ) from e
    return torch


def load_state_dict(path):
    """Reads a state_dict file without running any code stored in it."""
    torch = _import_torch()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # We explain TorchScript archives below.
            warnings.filterwarnings("ignore", message=".*TorchScript archive")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for unreadable files.
        message = str(e)
        if "TorchScript" in message:
            raise ConversionError(
                f"{path} is a TorchScript archive, not a state_dict. Export its "
                "state_dict once (this runs the archive's code: only for files you "
                "trust): python -c \"import torch; torch.save(torch.jit.load('"
                f"{path}').state_dict(), 'fan.pth')\""
            ) from e
        if "Weights only load failed" in message:
            raise ConversionError(
                f"{path}: refused to load: it pickles objects other than tensors "
                "and plain containers, and unpickling them could run code. "
                f"torch said: {message.splitlines()[0]}"
            ) from e
        raise ConversionError(
            f"{path} could not be read as a PyTorch state_dict "
            f"(corrupted or not a torch.save file): {type(e).__name__}: "
            f"{message.splitlines()[0] if message else ''}"
        ) from e
    return obj


def _unwrap(obj, source):
    """The plain {name: tensor} dict inside a checkpoint, 'module.' stripped."""
    if isinstance(obj, collections.abc.Mapping) and isinstance(
        obj.get("state_dict"), collections.abc.Mapping
    ):
        obj = obj["state_dict"]
    if not isinstance(obj, collections.abc.Mapping):
        raise ConversionError(
            f"{source}: expected a state_dict (a dict of tensors), found {type(obj).__name__}"
        )
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in obj.items()}


def _to_numpy(value, key, source):
    if hasattr(value, "detach"):  # A torch tensor; upcast half precision.
        value = value.detach().cpu()
        value = value.float() if value.is_floating_point() else value
        return value.numpy()
    if isinstance(value, np.ndarray):
        return value
    raise ConversionError(f"{source}: {key!r} holds a {type(value).__name__}, not a tensor")


def _describe(keys, n=8):
    keys = list(keys)
    more = f", ... ({len(keys)} in all)" if len(keys) > n else ""
    return ", ".join(repr(k) for k in keys[:n]) + more


def fan_config(state_dict, source="state_dict"):
    """Reads num_stacks, num_landmarks, width and depth from a FAN state_dict."""
    missing = [k for k in _REQUIRED if k not in state_dict]
    if missing:
        raise ConversionError(
            f"{source} is not a face-alignment FAN state_dict: missing "
            f"{_describe(missing)}; found keys {_describe(state_dict)}"
        )
    num_stacks = 0
    while f"l{num_stacks}.weight" in state_dict:
        num_stacks += 1
    levels = [int(m.group(1)) for k in state_dict if (m := re.match(r"m0\.b1_(\d+)\.", k))]
    return {
        "num_stacks": num_stacks,
        "num_landmarks": int(state_dict["l0.weight"].shape[0]),
        "width": int(state_dict["conv_last0.weight"].shape[0]),
        "depth": max(levels, default=0),
    }


def _flax_path(key, ndim):
    """torch 'conv2.downsample.0.weight' -> ('params', 'conv2', 'downsample_0', 'scale')."""
    *modules, leaf = key.split(".")
    names = []
    for part in modules:
        if part.isdigit() and names:  # nn.Sequential index: 'downsample.0'.
            names[-1] = f"{names[-1]}_{part}"
        else:
            names.append(part)
    collection, flax_leaf = _LEAVES.get((leaf, ndim), (None, None))
    if collection is None:
        return None
    return (collection, *names, flax_leaf)


def _torch_key(path):
    """Flax ('params', 'conv2', 'downsample_0', 'scale') -> 'conv2.downsample.0.weight'."""
    names = [re.sub(r"^(downsample)_(\d+)$", r"\1.\2", n) for n in path[1:-1]]
    return ".".join(names + [_FLAX_TO_TORCH_LEAF[path[-1]]])


def _to_flax(array, path):
    if path[-1] == "kernel":
        return np.transpose(array, (2, 3, 1, 0))  # OIHW -> HWIO.
    return array


def variables_from_state_dict(model, state_dict, source="state_dict"):
    """Maps a {name: ndarray} FAN state_dict onto the Flax variables of `model`."""
    expected = traverse_util.flatten_dict(abstract_variables(model))
    flat, unexpected = {}, []
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):  # Flax BatchNorm does not count.
            continue
        path = _flax_path(key, value.ndim)
        if path not in expected:
            unexpected.append(key)
            continue
        flat[path] = _to_flax(value, path)
    missing = [_torch_key(p) for p in expected if p not in flat]
    wrong = [
        f"{_torch_key(p)}: {flat[p].shape} (Flax layout) instead of {expected[p].shape}"
        for p in flat
        if flat[p].shape != expected[p].shape
    ]
    if missing or unexpected or wrong:
        problems = [
            f"missing keys: {_describe(missing)}" if missing else "",
            f"unexpected keys: {_describe(unexpected)}" if unexpected else "",
            f"wrong shapes: {'; '.join(wrong[:4])}" if wrong else "",
        ]
        raise ConversionError(
            f"{source} does not match FAN({model.config()}): " + "; ".join(p for p in problems if p)
        )
    variables = {p: jnp.asarray(v, dtype=expected[p].dtype) for p, v in flat.items()}
    return traverse_util.unflatten_dict(variables)


def _read(path_or_state_dict):
    """(plain state_dict, its name for messages) from a file or a dict."""
    if isinstance(path_or_state_dict, collections.abc.Mapping):
        return _unwrap(path_or_state_dict, "state_dict"), "state_dict"
    source = os.fspath(path_or_state_dict)
    return _unwrap(load_state_dict(source), source), source


def _fan_from_state_dict(state_dict, source, **module_kwargs):
    config = fan_config(state_dict, source)
    arrays = {k: _to_numpy(v, k, source) for k, v in state_dict.items()}
    model = FAN(**config, **module_kwargs)
    return model, variables_from_state_dict(model, arrays, source)


def fan_from_torch(path_or_state_dict, **module_kwargs):
    """A face-alignment FAN state_dict (file or dict) -> (FAN module, variables).

    Args:
      path_or_state_dict: a file written by `torch.save(fan.state_dict())`
        (optionally wrapped as {"state_dict": ...}, keys optionally prefixed by
        "module."), or such a dict itself.
      **module_kwargs: extra FAN fields, e.g. dtype=jnp.bfloat16.

    Returns:
      The FAN module (architecture read from the keys and shapes) and its
      variables {"params": ..., "batch_stats": ...} as float32 arrays.
    """
    return _fan_from_state_dict(*_read(path_or_state_dict), **module_kwargs)


def _torch_fan_from_state_dict(state_dict, source):
    torch = _import_torch()
    try:
        from face_alignment.models import FAN as TorchFAN  # pylint: disable=g-import-not-at-top
    except ImportError as e:
        raise ImportError(
            "--compare needs face-alignment: pip install face-alignment==1.5.0"
        ) from e
    config = fan_config(state_dict, source)
    if config["width"] != 256 or config["depth"] != 4:
        raise ConversionError(
            f"face-alignment's FAN has width 256 and depth 4; {source} has "
            f"width {config['width']}, depth {config['depth']}"
        )
    net = TorchFAN(config["num_stacks"])
    k = config["num_landmarks"]
    for i in range(config["num_stacks"]):  # Heads for other landmark counts.
        setattr(net, f"l{i}", torch.nn.Conv2d(256, k, kernel_size=1))
        if i < config["num_stacks"] - 1:
            setattr(net, f"al{i}", torch.nn.Conv2d(k, 256, kernel_size=1))
    net.load_state_dict(state_dict)
    return net.eval()


def torch_fan(path_or_state_dict):
    """The face-alignment PyTorch FAN with these weights, in eval mode."""
    return _torch_fan_from_state_dict(*_read(path_or_state_dict))


def load_images(paths, size=_IMAGE_SIZE):
    """Image files -> float32 [N, size, size, 3] RGB in [0, 1] (sphm_jax.data.image_io's reading rules)."""
    from PIL import Image  # pylint: disable=g-import-not-at-top

    from sphm_jax.data import image_io  # pylint: disable=g-import-not-at-top

    images = []
    for path in paths:
        try:
            rgb = Image.fromarray(image_io.read_image(path))
        except image_io.ImageError as e:
            raise ValueError(str(e)) from None
        images.append(np.asarray(rgb.resize((size, size), Image.BILINEAR), np.float32) / 255.0)
    return np.stack(images)


def compare(path_or_state_dict, images, decoders=("argmax_quarter", "local_softargmax")):
    """Runs both networks on images [N, H, W, 3] in [0, 1] (eval mode).

    Returns a dict: config (of the FAN), heatmap_max_abs_diff,
    torch_heatmap_max_abs, and landmark_max_diff_<decoder> in heatmap pixels,
    each a max over all stacks.
    """
    from sphm_jax import heatmaps  # pylint: disable=g-import-not-at-top

    torch = _import_torch()
    state_dict, source = _read(path_or_state_dict)
    model, variables = _fan_from_state_dict(state_dict, source)
    net = _torch_fan_from_state_dict(state_dict, source)
    images = np.asarray(images, np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(images.transpose(0, 3, 1, 2)))
    expected = [t.numpy().transpose(0, 2, 3, 1) for t in expected]
    with jax.default_matmul_precision("highest"):
        got = model.apply(variables, images)
    result = {
        "config": model.config(),
        "heatmap_max_abs_diff": max(
            float(np.max(np.abs(np.asarray(g) - e))) for g, e in zip(got, expected)
        ),
        "torch_heatmap_max_abs": max(float(np.max(np.abs(e))) for e in expected),
    }
    for method in decoders:
        result[f"landmark_max_diff_{method}"] = max(
            float(jnp.max(jnp.abs(heatmaps.decode(g, method) - heatmaps.decode(e, method))))
            for g, e in zip(got, expected)
        )
    return result


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m sphm_jax.convert", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--torch", required=True, help="face-alignment FAN state_dict (torch.save file)"
    )
    parser.add_argument("--output", help="directory for the Flax checkpoint")
    parser.add_argument(
        "--compare", action="store_true", help="run PyTorch and Flax on the same inputs"
    )
    parser.add_argument(
        "--images", nargs="+", default=None, help="images for --compare (default: random inputs)"
    )
    parser.add_argument("--size", type=int, default=_IMAGE_SIZE, help="input side for --compare")
    parser.add_argument(
        "--batch", type=int, default=2, help="number of random inputs for --compare"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random inputs for --compare"
    )
    args = parser.parse_args(argv)
    if not (args.output or args.compare):
        parser.error("nothing to do: give --output DIR and/or --compare")
    return args


def main(argv=None):
    args = _parse_args(argv)
    try:
        if args.output:
            model, variables = fan_from_torch(args.torch)
            checkpoints.save(args.output, 0, variables, model.config())
            print(f"wrote FAN({model.config()}) to {paths.path(args.output)}")
        if args.compare:
            if args.images:
                images, what = load_images(args.images, args.size), "images"
            else:
                rng = np.random.default_rng(args.seed)
                images = rng.uniform(size=(args.batch, args.size, args.size, 3))
                what = "random inputs"
            result = compare(args.torch, images)
            print(
                f"compared FAN({result['config']}) on {len(images)} {what} of "
                f"{args.size}x{args.size}"
            )
            diff, scale = result["heatmap_max_abs_diff"], result["torch_heatmap_max_abs"]
            print(
                f"max abs heatmap difference: {diff:.3g} "
                f"({diff / scale:.3g} of the max abs PyTorch heatmap {scale:.3g})"
            )
            for key, value in result.items():
                if key.startswith("landmark_max_diff_"):
                    print(
                        f"max landmark difference ({key[len('landmark_max_diff_') :]}):"
                        f" {value:.3g} heatmap px"
                    )
    except (OSError, ImportError, ValueError) as e:  # ConversionError too.
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    xla_cpu.apply()  # before JAX starts: XLA reads its flags once
    sys.exit(main())
