"""Real photographs that packages ship, with their faces' boxes: the detectors' and the confidence's
checks (scikit-image's astronaut and LFW subset, matplotlib's Grace Hopper); nothing is downloaded."""

from __future__ import annotations

import numpy as np

from sphm_jax.data import image_io

# Hand-drawn boxes (x_min, y_min, x_max, y_max) of the one face in each shipped photograph.
PHOTO_FACES = {"astronaut": (176, 62, 266, 172), "grace_hopper": (178, 110, 352, 330)}


def shipped_photos() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image, face boxes [F, 4]) of the photographs scikit-image and matplotlib ship."""
    import matplotlib.cbook  # pylint: disable=g-import-not-at-top
    import skimage.data  # pylint: disable=g-import-not-at-top

    grace = image_io.read_image(
        matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    )
    photos = [("astronaut", skimage.data.astronaut()), ("grace_hopper", grace)]
    out = [(n, im, np.float32([PHOTO_FACES[n]])) for n, im in photos]
    lfw = skimage.data.lfw_subset()  # 100 faces, then 100 non-faces: 25 x 25 grey in [0, 1]
    for i, patch in enumerate(lfw):
        image = _lfw_canvas(patch)
        faces = np.float32([[39.5, 39.5, 139.5, 139.5]]) if i < 100 else np.zeros((0, 4))
        out.append((f"lfw_{'face' if i < 100 else 'nonface'}_{i % 100:03d}", image, faces))
    return out


def _lfw_canvas(patch) -> np.ndarray:
    """A 25 x 25 LFW patch enlarged to 100 px, with 40 px of its edge around it (context)."""
    from PIL import Image  # pylint: disable=g-import-not-at-top

    grey = Image.fromarray(np.uint8(np.round(np.asarray(patch) * 255)))
    big = np.pad(np.asarray(grey.resize((100, 100), Image.BICUBIC)), 40, mode="edge")
    return np.repeat(big[..., None], 3, -1)
