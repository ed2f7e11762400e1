"""StepConfig: the static part of a training or evaluation step, read from a config."""

from __future__ import annotations

import dataclasses

from sphm_jax import augment, layouts


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """The static part of a step (hashable, so jit specialises on it); the seed is in the state."""

    image_size: int
    heatmap_size: int
    sigma: float
    quantize: str | None
    siamese: bool
    decoder: str
    window: int
    temperature: float
    augment: augment.AugmentConfig
    flip_permutation: tuple[int, ...]

    @property
    def stride(self) -> int:
        return self.image_size // self.heatmap_size

    @classmethod
    def from_config(cls, config, num_landmarks: int) -> StepConfig:
        a = config.augment
        return cls(
            image_size=config.image_size,
            heatmap_size=config.heatmap_size,
            sigma=float(config.sigma),
            quantize=config.quantize,
            siamese=bool(config.siamese),
            decoder=config.decoder,
            window=int(config.window),
            temperature=float(config.temperature),
            augment=augment.AugmentConfig(
                rotation=float(a.rotation),
                scale=tuple(a.scale),
                translation=float(a.translation),
                flip=bool(a.flip),
                colour=tuple(a.colour),
            ),
            flip_permutation=layouts.get_layout(num_landmarks).flip_permutation,
        )
