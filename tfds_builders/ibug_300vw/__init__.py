"""The `ibug_300vw` TFDS builder; importing the package registers it with tfds."""

from tfds_builders.ibug_300vw.ibug_300vw_dataset_builder import Builder

__all__ = ["Builder"]
