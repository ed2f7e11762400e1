"""Artefacts: the network and a decoder in one file that runs without this package.

Written by `python -m sphm_jax.export` (the command) and timed by
`python -m sphm_jax.benchmark --what export` (sphm_jax/benchmark/export_timings.py).

The artefact takes uint8 RGB crops [N, S, S, 3] ("images") and returns
"landmarks" float32[N, K, 2] in crop pixels (x, y; pixel centres at integer
coordinates) and "scores" float32[N, K] (each heatmap's maximum). Formats:
stablehlo (jax.export, reloads with jax.export.deserialize), onnx (jax2onnx,
runs in onnxruntime), tflite (jax2tf + the TFLite converter, runs in LiteRT;
fixed batch, see export_tflite) and savedmodel (jax2tf, runs in TensorFlow).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sphm_jax import heatmaps, inference
from sphm_jax.training import paths

FORMATS = ("stablehlo", "onnx", "tflite", "savedmodel")
FILE_NAMES = {
    "stablehlo": "landmarks.stablehlo",
    "onnx": "landmarks.onnx",
    "tflite": "landmarks.tflite",
    "savedmodel": "landmarks_savedmodel",
}
INPUT_NAME = "images"
OUTPUT_NAMES = ("landmarks", "scores")
EXTRA = "pip install 'sphm_jax[export]' (or '.[export]' in a clone)"


def exportable_fn(
    model,
    variables,
    *,
    decoder="local_softargmax",
    window=5,
    temperature=10.0,
    flip_permutation=None,
):
    """images uint8[N, S, S, 3] -> (landmarks float32[N, K, 2] in crop pixels, scores float32[N, K]).

    The variables are closed over, so every format stores them as constants in its one file.
    """
    if decoder not in heatmaps.METHODS:
        raise ValueError(f"unknown decoder {decoder!r}; choose one of {heatmaps.METHODS}")

    def fn(images):
        points, scores = inference.crop_landmarks(
            model.apply,
            variables,
            images,
            decoders=(decoder,),
            window=window,
            temperature=temperature,
            flip_permutation=flip_permutation,
        )
        return points[decoder], scores

    return fn


def _image_spec(image_size, batch):
    return jax.ShapeDtypeStruct((batch, image_size, image_size, 3), jnp.uint8)


def export_stablehlo(fn, image_size, batch=None) -> bytes:
    """Serialized jax.export.Exported (batch None: symbolic "N"), lowered for CPU, CUDA and TPU."""
    if batch is None:
        (batch,) = jax.export.symbolic_shape("N")
    exported = jax.export.export(jax.jit(fn), platforms=("cpu", "cuda", "tpu"))(
        _image_spec(image_size, batch)
    )
    return bytes(exported.serialize())


def _require(module, fmt):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        raise ImportError(f"--format {fmt} needs {module.split('.')[0]}: {EXTRA}") from e


def export_onnx(fn, image_size, batch=None) -> bytes:
    """An ONNX model (opset 23; batch None: dynamic "N"), converted by jax2onnx.

    jax2onnx 0.17.1 cannot lower the integer remainder of the argmax decoders
    with a dynamic batch; a fixed batch converts them.
    """
    jax2onnx = _require("jax2onnx", "onnx")
    try:
        proto = jax2onnx.to_onnx(
            fn,
            [
                jax.ShapeDtypeStruct(
                    ("N" if batch is None else batch,) + (image_size,) * 2 + (3,), jnp.uint8
                )
            ],
            model_name="sphm_landmarks",
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
        )
    except jax.errors.InconclusiveDimensionOperation as e:
        raise ValueError(
            f"jax2onnx cannot convert this with a dynamic batch ({e}); a fixed --batch converts it"
        ) from e
    data = proto.SerializeToString()
    _check_onnx_loads(data)
    return data


def _check_onnx_loads(data):
    """Raises if onnxruntime refuses the model (jax2onnx's DARK graph fails its shape inference)."""
    ort = _require("onnxruntime", "onnx")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph types
        raise ValueError(f"onnxruntime cannot load the model jax2onnx wrote: {e}") from e


def _tf_function(fn, image_size, batch):
    """fn as a tf.function through jax2tf (StableHLO inside an XlaCallModule op)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top

    converted = jax2tf.convert(fn, polymorphic_shapes=None if batch else ["(N, ...)"])
    spec = tf.TensorSpec([batch, image_size, image_size, 3], tf.uint8, name=INPUT_NAME)

    def named(images):
        return dict(zip(OUTPUT_NAMES, converted(images)))

    return tf.function(named, autograph=False, input_signature=[spec])


def export_tflite(fn, image_size, batch=1, float16=False) -> bytes:
    """A TFLite flatbuffer with signature "serving_default" for a fixed batch.

    The converter refuses the decoder's gathers when the batch is dynamic
    ("'mhlo.gather' op Dynamic shaped operand is not supported"), so the batch is fixed here.
    """
    tf = _require("tensorflow", "tflite")
    tf_fn = _tf_function(fn, image_size, batch)
    module = tf.Module()
    module.f = tf_fn
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [tf_fn.get_concrete_function()], module
    )
    if float16:  # weights stored as float16, computed in float32
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def export_savedmodel(fn, image_size, directory, batch=None) -> None:
    """A TensorFlow SavedModel (batch None: dynamic) with signature "serving_default"."""
    tf = _require("tensorflow", "savedmodel")
    module = tf.Module()
    module.f = _tf_function(fn, image_size, batch)
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.f})


def write(fn, fmt, image_size, output, batch=None, float16=False):
    """Writes fn in `fmt` under the directory `output`; returns the artefact's path.

    batch None: dynamic, except tflite (batch 1), whose converter needs a fixed one.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    output = paths.path(output)
    output.mkdir(parents=True, exist_ok=True)
    path = output / FILE_NAMES[fmt]
    if float16:
        if fmt != "tflite":
            raise ValueError(f"float16 weights are offered for tflite only, not {fmt}")
        path = output / "landmarks_float16.tflite"
    if fmt == "savedmodel":
        export_savedmodel(fn, image_size, path, batch)
        return path
    if fmt == "stablehlo":
        data = export_stablehlo(fn, image_size, batch)
    elif fmt == "onnx":
        data = export_onnx(fn, image_size, batch)
    else:
        data = export_tflite(fn, image_size, batch or 1, float16)
    path.write_bytes(data)
    return path


def file_bytes(path) -> int:
    """Size of a file, or of all files under a directory (a SavedModel)."""
    path = paths.path(path)
    if not path.is_dir():
        return path.stat().length
    return sum(file_bytes(child) for child in path.iterdir())


def runner(fmt, path, num_threads=None):
    """images uint8[N, S, S, 3] -> (landmarks, scores) as numpy, run by the format's own runtime."""
    path = str(path)
    if fmt == "stablehlo":
        call = jax.jit(jax.export.deserialize(bytearray(paths.path(path).read_bytes())).call)
        return lambda x: tuple(np.asarray(a) for a in call(x))
    if fmt == "onnx":
        ort = _require("onnxruntime", fmt)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # jax2onnx's layout hints print a warning per conv
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return lambda x: tuple(session.run(list(OUTPUT_NAMES), {INPUT_NAME: x}))
    if fmt == "tflite":
        litert = _require("ai_edge_litert.interpreter", fmt)
        signature = litert.Interpreter(
            model_path=path, num_threads=num_threads
        ).get_signature_runner()
        return lambda x: tuple(signature(**{INPUT_NAME: x})[k] for k in OUTPUT_NAMES)
    if fmt == "savedmodel":
        tf = _require("tensorflow", fmt)
        serving = tf.saved_model.load(path).signatures["serving_default"]
        return lambda x: tuple(
            serving(**{INPUT_NAME: tf.constant(x)})[k].numpy() for k in OUTPUT_NAMES
        )
    raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
