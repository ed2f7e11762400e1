"""The sample sheet of the synthetic faces (sphm_jax.data.synthetic_faces) and the test clip.

python -m sphm_jax.synthetic --grid docs/synthetic_faces.png [--seed N]
python -m sphm_jax.synthetic --clip DIR [--seed N] [--frames T]
"""

from __future__ import annotations

import argparse

from PIL import Image, ImageDraw

from sphm_jax import layouts
from sphm_jax.data.synthetic_faces.clip import render_clip, write_clip
from sphm_jax.data.synthetic_faces.renderer import render
from sphm_jax.data.synthetic_faces.sampling import sample_params
from sphm_jax.training import xla_cpu

# Landmark colours of the grid, one per layouts.IBUG68 group: jaw, brows, nose, eyes, mouth.
_GROUP_COLOURS = ((255, 255, 0), (255, 128, 0), (0, 255, 255), (0, 255, 0), (255, 0, 255))


def grid(seed: int = 0, rows: int = 4, cols: int = 4, tile: int = 192) -> Image.Image:
    """A rows x cols sheet of random faces (seeds seed, seed + 1, ...) with their landmarks."""
    sheet = Image.new("RGB", (cols * tile, rows * tile))
    for i in range(rows * cols):
        face = render(sample_params(seed + i))
        img = Image.fromarray(face.image).resize((tile, tile), Image.LANCZOS)
        draw = ImageDraw.Draw(img)
        # Resizing maps x to (x + 0.5) * tile / size - 0.5, the pixel-centre convention.
        pts = (face.landmarks + 0.5) * tile / face.image.shape[1] - 0.5
        for (_, indices), colour in zip(layouts.IBUG68.groups, _GROUP_COLOURS):
            for x, y in pts[list(indices)]:
                draw.ellipse([x - 1.2, y - 1.2, x + 1.2, y + 1.2], fill=colour)
        sheet.paste(img, ((i % cols) * tile, (i // cols) * tile))
    return sheet


def main(argv=None) -> None:
    # argparse, not absl flags: this module is imported by absl programs that define --seed.
    parser = argparse.ArgumentParser(
        prog="python -m sphm_jax.synthetic", description="Samples of the synthetic_faces renderer."
    )
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--grid", help="PNG file to write the sample sheet to.")
    out.add_argument("--clip", help="Folder to write the test clip to (see `write_clip`).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the (first) face.")
    parser.add_argument("--frames", type=int, default=48, help="Frames of the clip.")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--cols", type=int, default=4)
    parser.add_argument("--tile", type=int, default=192, help="Side of one sample, px.")
    args = parser.parse_args(argv)
    if args.clip:
        paths = write_clip(args.clip, *render_clip(args.seed, args.frames))
        print("\n".join(f"{k}: {v}" for k, v in paths.items()))
        return
    sheet = grid(args.seed, args.rows, args.cols, args.tile)
    # An adaptive palette keeps the noisy sheet small enough for the README.
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        args.grid, optimize=True
    )


if __name__ == "__main__":
    xla_cpu.apply()  # before JAX starts: XLA reads its flags once
    main()
