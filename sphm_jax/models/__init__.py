"""Network architectures."""

from sphm_jax.models.hourglass import ConvBlock
from sphm_jax.models.hourglass import FAN
from sphm_jax.models.hourglass import HourGlass
from sphm_jax.models.hourglass import abstract_variables
from sphm_jax.models.hourglass import count_params

__all__ = ["ConvBlock", "FAN", "HourGlass", "abstract_variables", "count_params"]
