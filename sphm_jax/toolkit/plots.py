"""Pictures of predictions: landmark overlays, CED curves, best/worst grids and heatmaps.

Figures are built on matplotlib's object API with the Agg canvas (no global
pyplot state, no display needed); overlays are drawn with PIL so a folder of
images costs no figure per image.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from sphm_jax import metrics
from sphm_jax.training import paths

PRED_COLOUR, GT_COLOUR = (255, 60, 60), (60, 220, 60)


def draw_landmarks(image, boxes, points, gt=None, flagged=None) -> np.ndarray:
    """uint8 RGB copy of `image` with each face's box and points (and ground truth, if given);
    flagged [F, K] points (unreliable) are drawn as rings."""
    canvas = Image.fromarray(np.asarray(image, np.uint8))
    draw = ImageDraw.Draw(canvas)
    radius = max(1.0, max(canvas.size) / 300.0)
    for f, box in enumerate(np.asarray(boxes, np.float64)):
        draw.rectangle(box.tolist(), outline=(255, 200, 0), width=max(1, int(radius)))
        rings = np.zeros(len(points[f]), bool) if flagged is None else np.asarray(flagged[f])
        sets = [(points[f], PRED_COLOUR, rings)]
        if gt is not None:
            sets.append((gt[f], GT_COLOUR, np.zeros(len(gt[f]), bool)))
        for pts, colour, ring in sets:
            for (x, y), r in zip(np.asarray(pts, np.float64), ring):
                if np.isfinite(x) and np.isfinite(y):
                    circle = [x - 2 * radius, y - 2 * radius, x + 2 * radius, y + 2 * radius]
                    if r:
                        draw.ellipse(circle, outline=colour, width=max(1, int(radius)))
                    else:
                        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    return np.asarray(canvas)


def save_png(image, path) -> None:
    png = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(png, format="PNG")
    paths.path(path).write_bytes(png.getvalue())


def _save(figure: Figure, path) -> None:
    FigureCanvasAgg(figure)
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100, bbox_inches="tight")
    paths.path(path).write_bytes(png.getvalue())


def ced_figure(curves: Mapping[str, np.ndarray], threshold: float, path, title: str = "") -> None:
    """Cumulative error distribution of one or several sets of per-image NMEs, up to `threshold`."""
    figure = Figure(figsize=(6, 4.5))
    ax = figure.add_subplot()
    for label, nmes in curves.items():
        x, y = metrics.ced(np.asarray(nmes), threshold)
        auc = float(metrics.auc(np.asarray(nmes), threshold))
        ax.plot(100 * np.asarray(x), 100 * np.asarray(y), label=f"{label} (AUC {100 * auc:.2f})")
    ax.set_xlim(0, 100 * threshold)
    ax.set_ylim(0, 100)
    ax.set_xlabel("NME (%)")
    ax.set_ylabel("images (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    _save(figure, path)


def prediction_grid(images, preds, gts, titles: Sequence[str], path, columns: int = 4) -> None:
    """Crops with predicted (red) and ground-truth (green) points, one titled panel each."""
    n = len(images)
    rows = max(1, -(-n // columns))
    figure = Figure(figsize=(2.6 * columns, 2.8 * rows))
    for i in range(n):
        ax = figure.add_subplot(rows, columns, i + 1)
        ax.imshow(np.asarray(images[i], np.uint8))
        ax.scatter(*np.asarray(gts[i]).T, s=4, c=[np.array(GT_COLOUR) / 255], label="truth")
        ax.scatter(*np.asarray(preds[i]).T, s=4, c=[np.array(PRED_COLOUR) / 255], label="predicted")
        ax.set_title(titles[i], fontsize=8)
        ax.axis("off")
    _save(figure, path)


def heatmap_figure(image, hm, points, path, channels: Sequence[int] = (), title: str = "") -> None:
    """A crop, the maximum of its K heatmaps over it, and a few single heatmaps with their points.

    hm: float[h, w, K] of the crop; points: [K, 2] in heatmap pixels.
    """
    hm = np.asarray(hm, np.float32)
    channels = list(channels) or list(np.linspace(0, hm.shape[-1] - 1, 4).astype(int))
    figure = Figure(figsize=(3 * (2 + len(channels)), 3.2))
    ax = figure.add_subplot(1, 2 + len(channels), 1)
    ax.imshow(np.asarray(image, np.uint8))
    ax.set_title(title or "crop", fontsize=9)
    ax.axis("off")
    ax = figure.add_subplot(1, 2 + len(channels), 2)
    ax.imshow(hm.max(-1), cmap="magma")
    ax.scatter(*np.asarray(points).T, s=3, c="cyan")
    ax.set_title(f"max of {hm.shape[-1]} heatmaps", fontsize=9)
    ax.axis("off")
    for j, k in enumerate(channels):
        ax = figure.add_subplot(1, 2 + len(channels), 3 + j)
        ax.imshow(hm[..., k], cmap="magma")
        ax.plot(*np.asarray(points)[k], "c+", markersize=10)
        ax.set_title(f"landmark {k}: ({points[k][0]:.2f}, {points[k][1]:.2f})", fontsize=9)
        ax.axis("off")
    _save(figure, path)
