"""The `ibug_300w` TFDS builder; importing the package registers it with tfds."""

from tfds_builders.ibug_300w.ibug_300w_dataset_builder import Builder

__all__ = ["Builder"]
