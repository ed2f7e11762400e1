"""The `synthetic_faces` TFDS builder (importing this package registers it)."""

from tfds_builders.synthetic_faces.synthetic_faces_dataset_builder import Builder

__all__ = ["Builder"]
