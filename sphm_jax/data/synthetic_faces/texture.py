"""What is not a feature: the background, the skin's grain and shading, and the image's
lighting, blur, sensor noise and greyscale, drawn from the random streams of `stream`."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from sphm_jax.data.synthetic_faces.face import FaceParams
from sphm_jax.data.synthetic_faces.raster import Patch, composite, ellipse


def stream(p: FaceParams, k: int) -> np.random.Generator:
    """The k-th random stream of a face's textures and minor colours, independent of the others."""
    return np.random.default_rng([p.texture_seed, k])


def _field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """float32[size, size] smooth noise of about unit variance: a cells^2 grid, bicubic-enlarged."""
    grid = Image.fromarray(rng.standard_normal((cells, cells)).astype(np.float32), mode="F")
    return np.asarray(grid.resize((size, size), Image.BICUBIC))


def grain(rng: np.random.Generator, size: int) -> np.ndarray:
    """float32[size, size, 1]: blotches plus fine grain, about unit variance, for every texture."""
    return (_field(rng, size, rng.integers(4, 10)) + 0.5 * _field(rng, size, size // 4))[..., None]


def background_image(p: FaceParams) -> Image.Image:
    """RGB image: a gradient, colour noise or stripes, with grain and random shapes.

    Drawn at half size and enlarged: nothing here needs sub-pixel accuracy.
    """
    rng, size = stream(p, 0), p.image_size // 2
    a, b = rng.uniform(0, 1, (2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.arange(size, dtype=np.float32) / size - 0.5
    ramp = xs[None, :] * np.cos(angle) + xs[:, None] * np.sin(angle)
    if p.background == 0:
        mix = ramp + 0.5
    elif p.background == 1:
        mix = 0.5 + 0.2 * _field(rng, size, rng.integers(2, 8))
    else:
        mix = 0.5 + 0.5 * np.tanh(3 * np.sin(2 * np.pi * rng.uniform(2, 12) * ramp))
    canvas = a + (b - a) * mix[..., None]
    if p.background == 1:
        canvas += 0.15 * np.stack([_field(rng, size, 5) for _ in range(3)], -1)
    canvas = Image.fromarray(np.clip(canvas * 255 + 0.5, 0, 255).astype(np.uint8))
    for _ in range(p.clutter):
        center, radii = rng.uniform(0, size, 2), rng.uniform(0.05, 0.3, 2) * size
        shape = ellipse(center, radii, rng.uniform(0, np.pi), n=int(rng.choice([3, 4, 6, 24])))
        composite(canvas, shape, rng.uniform(0, 1, 3), samples=2)
    return canvas.resize((p.image_size, p.image_size), Image.BILINEAR)


def face_shading(p: FaceParams, face: Patch) -> np.ndarray:
    """float32[H, W]: a multiplier darkening the face toward its outline (a rounded head)."""
    shading = np.ones((p.image_size, p.image_size), np.float32)
    h, w = face.alpha.shape
    if p.shading == 0 or face.alpha.size == 0:
        return shading
    roll = np.deg2rad(p.roll)
    # Unit-frame coordinates of the window's pixels, by broadcasting a column and a row.
    dx = ((np.arange(w, dtype=np.float32) + face.col0 - p.center[0]) / p.scale)[None, :]
    dy = ((np.arange(h, dtype=np.float32) + face.row0 - p.center[1]) / p.scale)[:, None]
    qx = (np.cos(roll) * dx + np.sin(roll) * dy) / max(np.cos(np.deg2rad(p.yaw)), 0.5)
    qy = -np.sin(roll) * dx + np.cos(roll) * dy
    r2 = np.minimum((qx / 0.95) ** 2 + (qy - 0.05) ** 2, 1.3)
    shading[face.row0 : face.row0 + h, face.col0 : face.col0 + w] -= p.shading * face.alpha * r2**2
    return shading


def finish(p: FaceParams, canvas: Image.Image, gain: np.ndarray) -> np.ndarray:
    """Lighting gradient, brightness and the per-pixel `gain`, blur, sensor noise, greyscale."""
    size, rng = p.image_size, stream(p, 2)
    angle = np.deg2rad(p.light_angle)
    xs = np.arange(size, dtype=np.float32) / size - 0.5
    ramp = np.cos(angle) * xs[None, :] + np.sin(angle) * xs[:, None]
    gain *= p.brightness * (1 + 2 * p.light * ramp)
    # In-place float32 arithmetic: every new 256 x 256 x 3 array costs its page faults.
    image = np.asarray(canvas, np.float32)
    image *= gain[..., None]
    image += 0.5  # rounds, with the truncating casts below
    if p.blur > 0:
        # A box blur of fractional radius: 2.5x faster than Pillow's three-box Gaussian.
        blurred = Image.fromarray(np.clip(image, 0, 255, out=image).astype(np.uint8))
        image = np.asarray(blurred.filter(ImageFilter.BoxBlur(p.blur)), np.float32)
        image += 0.5
    if p.noise > 0:
        # Uniform luminance noise of standard deviation `noise`: 6x faster than Gaussian.
        noise = rng.random((size, size, 1), np.float32)
        noise -= 0.5
        noise *= np.sqrt(12) * p.noise
        image += noise
    image = np.clip(image, 0, 255, out=image).astype(np.uint8)
    if p.gray:
        grey = image.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
        image = np.repeat(np.rint(grey).astype(np.uint8)[..., None], 3, -1)
    return image
