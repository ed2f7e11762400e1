"""The `ibug_300w_lp` TFDS builder; importing the package registers it with tfds."""

from tfds_builders.ibug_300w_lp.ibug_300w_lp_dataset_builder import Builder

__all__ = ["Builder"]
