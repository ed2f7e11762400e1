"""The `pts_folder` TFDS builder; importing the package registers it with tfds."""

from tfds_builders.pts_folder.pts_folder_dataset_builder import Builder

__all__ = ["Builder"]
