"""The `aflw` TFDS builder; importing the package registers it with tfds."""

from tfds_builders.aflw.aflw_dataset_builder import Builder

__all__ = ["Builder"]
