"""The `menpo` TFDS builder; importing the package registers it with tfds."""

from tfds_builders.menpo.menpo_dataset_builder import Builder

__all__ = ["Builder"]
