"""Network architectures."""

from sphm_jax.models.hourglass import FAN, ConvBlock, HourGlass, abstract_variables, count_params

__all__ = ["ConvBlock", "FAN", "HourGlass", "abstract_variables", "count_params"]
