"""Tests for sphm_jax.data.image_io: every odd image format ends as uint8 RGB, broken files are named."""

import numpy as np
import pytest
from PIL import Image

from sphm_jax.data import image_io


def _save(tmp_path, name, image, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_rgb_png_is_read_unchanged(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    got = image_io.read_image(_save(tmp_path, "a.png", Image.fromarray(rgb)))
    np.testing.assert_array_equal(got, rgb)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    grey = np.arange(35, dtype=np.uint8).reshape(5, 7)
    got = image_io.read_image(_save(tmp_path, "g.png", Image.fromarray(grey, "L")))
    assert got.shape == (5, 7, 3) and got.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], grey)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    grey = np.array([[0, 257, 65535, 32896]], np.uint16)
    got = image_io.read_image(_save(tmp_path, "g16.png", Image.fromarray(grey)))
    np.testing.assert_array_equal(got[..., 0], [[0, 1, 255, 128]])


def test_rgba_is_composited_on_black(tmp_path):
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 0], [200, 100, 50, 128]]], np.uint8)
    got = image_io.read_image(_save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")))
    np.testing.assert_array_equal(got[0, 0], [200, 100, 50])
    np.testing.assert_array_equal(got[0, 1], [0, 0, 0])
    np.testing.assert_array_equal(got[0, 2], np.round(np.array([200, 100, 50]) * 128 / 255))


def test_exif_rotation_is_applied(tmp_path):
    rgb = np.zeros((4, 10, 3), np.uint8)
    rgb[0, 0] = 255  # a white top-left pixel
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(tmp_path, "r.png", Image.fromarray(rgb), exif=exif)
    got = image_io.read_image(path)
    assert got.shape == (10, 4, 3)  # displayed upright: width and height swap
    assert got[0, -1].min() == 255  # the top-left corner went to the top right


def test_palette_image_is_rgb(tmp_path):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (6, 6, 3), dtype=np.uint8))
    got = image_io.read_image(_save(tmp_path, "p.gif", img.convert("P")))
    assert got.shape == (6, 6, 3) and got.dtype == np.uint8


@pytest.mark.parametrize("content", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_broken_file_is_named(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(image_io.ImageError, match="broken.png"):
        image_io.read_image(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(image_io.ImageError, match="nothere.jpg"):
        image_io.read_image(tmp_path / "nothere.jpg")


def test_truncated_jpeg_is_named(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = _save(tmp_path, "t.jpg", Image.fromarray(rgb))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(image_io.ImageError, match="t.jpg"):
        image_io.read_image(path)
