"""The `wflw` TFDS builder; importing the package registers it with tfds."""

from tfds_builders.wflw.wflw_dataset_builder import Builder

__all__ = ["Builder"]
