"""Sub-pixel landmarks of faces in images, batched and jitted: `Predictor.load(path)(image, boxes)`.

Each face is cropped by the training pipeline's own rule (input_pipeline.preprocess),
run through the network in fixed-size batches spread over the local devices,
decoded sub-pixel and mapped back to original image pixels.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import numpy as np
import tensorflow as tf

from sphm_jax import geometry, heatmaps, inference, layouts
from sphm_jax.data import input_pipeline
from sphm_jax.data.boxes import InputError, check_box, whole_image_box
from sphm_jax.training import checkpoints, mesh

# Peak score below which a point is reported unreliable (docs/predict.md, confidence per point).
RELIABLE_SCORE = 0.5
_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)


@dataclasses.dataclass
class Predictor:
    """Sub-pixel landmarks of faces in images; batched, jitted, spread over the local devices.

    crop_scale: crop side / longer box side (the training pipeline's rule);
    use 1.0 with whole-image boxes to feed pre-cropped faces unchanged.
    """

    model: Any
    variables: Any
    image_size: int = 256
    crop_scale: float = geometry.CROP_SCALE
    decoder: str = "local_softargmax"
    window: int = 5
    temperature: float = 10.0
    flip: bool = False
    batch_size: int = 32

    def __post_init__(self):
        if self.decoder not in heatmaps.METHODS:
            raise InputError(f"decoder {self.decoder!r}: choose one of {heatmaps.METHODS}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be positive, got {self.batch_size}")
        multiple = self.model.input_multiple
        if self.image_size % multiple:
            raise InputError(f"image_size {self.image_size} is not a multiple of {multiple}")
        permutation = None
        if self.flip:
            permutation = layouts.get_layout(self.model.num_landmarks).flip_permutation
        dp = mesh.data_parallel(jax.local_devices())
        # Whole batches per device: the last, short batch is padded, so one compile serves all.
        self._padded = math.ceil(self.batch_size / dp.mesh.size) * dp.mesh.size
        self._fn = inference.landmark_fn(
            self.model,
            self.variables,
            dp,
            decoders=(self.decoder,),
            window=self.window,
            temperature=self.temperature,
            flip_permutation=permutation,
        )

    @classmethod
    def load(cls, path, step=None, **settings) -> "Predictor":
        """From a training workdir (its config.json's crop and decoder) or a checkpoint directory."""
        model, variables, found = checkpoints.load_checkpoint(path, step, **settings)
        return cls(model, variables, **found)

    @property
    def num_landmarks(self) -> int:
        return self.model.num_landmarks

    def predict_crops(self, images, crops) -> tuple[np.ndarray, np.ndarray]:
        """(points [N, K, 2] in original pixels, peak scores [N, K]) of uint8 crops [N, S, S, 3]."""
        images, crops = np.asarray(images, np.uint8), np.asarray(crops, np.float32)
        points, scores = [], []
        for start in range(0, len(images), self._padded):
            chunk = slice(start, start + self._padded)
            n = len(images[chunk])
            fill = self._padded - n  # padding: black crops with identity matrices
            out = self._fn(
                {
                    "image": np.pad(images[chunk], [(0, fill)] + [(0, 0)] * 3),
                    "crop": np.concatenate([crops[chunk], np.tile(_IDENTITY, (fill, 1, 1))]),
                }
            )
            p, s = out[self.decoder], out["scores"]
            points.append(np.asarray(p)[:n])
            scores.append(np.asarray(s)[:n])
        k = self.num_landmarks
        if not points:
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        return np.concatenate(points), np.concatenate(scores)

    def crop(self, image, box) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 crop [S, S, 3], float32 matrix original -> crop) by the training pipeline's rule."""
        example = {"image": image, "bbox": box, "landmarks": np.zeros((0, 2), np.float32)}
        out = input_pipeline.preprocess(example, self.image_size, self.crop_scale)
        return out["image"].numpy(), out["crop"].numpy()

    def __call__(self, image, boxes=None) -> tuple[np.ndarray, np.ndarray]:
        """(points [F, K, 2], scores [F, K]) of the faces `boxes` [F, 4] (default: the whole image)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise InputError(f"image must be uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}")
        if boxes is None:
            boxes = [whole_image_box(*image.shape[:2])]
        shape = image.shape
        crops = [
            self.crop(image, check_box(b, *shape[:2], f"box {i}")) for i, b in enumerate(boxes)
        ]
        return self.predict_crops([c[0] for c in crops], [c[1] for c in crops])

    def stream(self, faces: Iterable[tuple[Any, np.ndarray, np.ndarray]]) -> Iterator[tuple]:
        """(key, points [K, 2], scores [K]) per (key, image, box), cropped in tf.data threads.

        Memory stays bounded: images are pulled from `faces` as batches are needed.
        """
        keys = collections.deque()  # filled by the generator, emptied in the same order below

        def examples():
            for key, image, box in faces:
                keys.append(key)
                yield {"image": image, "bbox": box, "landmarks": np.zeros((0, 2), np.float32)}

        signature = {
            "image": tf.TensorSpec([None, None, 3], tf.uint8),
            "bbox": tf.TensorSpec([4], tf.float32),
            "landmarks": tf.TensorSpec([0, 2], tf.float32),
        }
        ds = tf.data.Dataset.from_generator(examples, output_signature=signature)
        ds = ds.map(
            lambda ex: input_pipeline.preprocess(ex, self.image_size, self.crop_scale),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        for batch in ds.batch(self._padded).prefetch(1).as_numpy_iterator():
            points, scores = self.predict_crops(batch["image"], batch["crop"])
            for p, s in zip(points, scores):
                yield keys.popleft(), p, s
