"""Image files -> uint8 RGB arrays, the one reader of the project (builders, predict, convert)."""

from __future__ import annotations

import io

import numpy as np
from etils import epath
from PIL import Image, ImageOps


class ImageError(ValueError):
    """An image file that cannot be read; the message names it."""


def to_rgb(img: Image.Image) -> np.ndarray:
    """uint8 [H, W, 3] RGB of a PIL image: EXIF rotation applied; grey, palette, RGBA, 16-bit converted."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: scale by the format's range, not clip at 255.
        grey = np.asarray(img, np.float64) / 257.0
        return np.repeat(np.clip(np.round(grey), 0, 255).astype(np.uint8)[..., None], 3, -1)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels become black, as the zero padding of a crop; not their hidden colour.
        img = img.convert("RGBA")
        rgba = np.asarray(img, np.float32)
        rgb = rgba[..., :3] * (rgba[..., 3:] / 255.0)
        return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    return np.asarray(img.convert("RGB"))


def read_image(path) -> np.ndarray:
    """uint8 [H, W, 3] RGB of an image file (see to_rgb); an unreadable file is an ImageError."""
    path = epath.Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageError(f"{path}: cannot be read ({err})") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return to_rgb(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageError(f"{path}: not a readable image ({err})") from None
