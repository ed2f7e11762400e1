"""The `cofw` TFDS builder; importing the package registers it with tfds."""

from tfds_builders.cofw.cofw_dataset_builder import Builder

__all__ = ["Builder"]
