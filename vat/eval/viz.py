"""Pictures for reports and eyeballing: boxes drawn on images, labelled tiles, grids.

All functions take and return ``uint8`` RGB ``(H, W, 3)`` arrays and never modify their
input.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

from vat.data.manifest import Box

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_colour(cls: int) -> tuple[int, int, int]:
    """A distinct, bright RGB colour per class index (golden-ratio hue steps)."""
    h = (cls * 0.618033988749895 + 0.05) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _rgb3(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    return np.ascontiguousarray(image)


def _text(img: np.ndarray, text: str, x: int, y: int, colour, scale: float) -> None:
    """Text with its top-left at (x, y) on a filled background of ``colour``."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    H, W = img.shape[:2]
    x = int(min(max(x, 0), max(W - tw - 2, 0)))
    y = int(min(max(y, 0), max(H - th - base - 2, 0)))
    cv2.rectangle(img, (x, y), (x + tw + 2, y + th + base + 1), colour, -1)
    fg = (0, 0, 0) if sum(colour) > 382 else (255, 255, 255)
    cv2.putText(img, text, (x + 1, y + th + 1), _FONT, scale, fg, 1, cv2.LINE_AA)


def draw_boxes(
    image: np.ndarray,
    boxes: Sequence[Box],
    classes: Sequence[str],
    scores: Sequence[float] | None = None,
) -> np.ndarray:
    """A copy of ``image`` with each box outlined in its class colour and labelled
    ``name`` (or ``name 0.87`` with scores). Boxes are in pixels, x1 y1 x2 y2."""
    out = _rgb3(image).copy()
    H, W = out.shape[:2]
    scale = float(np.clip(min(H, W) / 600.0, 0.28, 0.6))
    thick = 1 if min(H, W) < 400 else 2
    for i, b in enumerate(boxes):
        col = class_colour(int(b.cls))
        name = classes[b.cls] if 0 <= b.cls < len(classes) else str(b.cls)
        if scores is not None:
            name = f"{name} {scores[i]:.2f}"
        x1, y1 = int(round(b.x1)), int(round(b.y1))
        x2, y2 = int(round(b.x2)) - 1, int(round(b.y2)) - 1
        cv2.rectangle(out, (x1, y1), (max(x2, x1), max(y2, y1)), col, thick)
        (_, th), base = cv2.getTextSize(name, _FONT, scale, 1)
        ty = y1 - th - base - 1 if y1 - th - base - 1 >= 0 else y1 + 1
        _text(out, name, x1, ty, col, scale)
    return out


def draw_detections(image: np.ndarray, det, classes: Sequence[str]) -> np.ndarray:
    """:func:`draw_boxes` of a detector's output for one image (anything with ``boxes`` (N, 4),
    ``classes`` (N,) and ``scores`` (N,) tensors, e.g. :class:`vat.models.detectors.Detections`)."""
    boxes = [Box(int(c), *map(float, b)) for b, c in zip(det.boxes.cpu(), det.classes.cpu(), strict=True)]
    return draw_boxes(image, boxes, classes, det.scores.tolist())


def label_strip(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` with a dark strip underneath holding ``text`` (for labelled crops): the text
    shrinks to fit the width, down to a legible size, then wraps onto more lines; never cut."""
    img = _rgb3(image)
    H, W = img.shape[:2]
    scale = float(np.clip(W / 250.0, 0.3, 0.6))
    while scale > 0.3 and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > W - 4:
        scale = max(0.3, scale - 0.05)
    lines = _wrap(text, W - 4, scale)
    (_, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    step = th + base + 2
    strip = np.full((step * len(lines) + 2, W, 3), 30, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(strip, line, (2, th + 2 + i * step), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([img, strip], axis=0)


def _wrap(text: str, width: int, scale: float) -> list[str]:
    """``text`` in lines at most ``width`` px wide at ``scale`` (a longer word alone on its line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and cv2.getTextSize(f"{lines[-1]} {word}", _FONT, scale, 1)[0][0] <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def grid(images: Sequence[np.ndarray], ncols: int, pad: int = 2) -> np.ndarray:
    """Tile images row by row on a dark background, each in a cell of the first's size: an
    image of another size is scaled to fit the cell, keeping its aspect ratio (letterboxed)."""
    if not images:
        raise ValueError("grid: no images")
    ncols = max(1, min(int(ncols), len(images)))
    first = _rgb3(images[0])
    h, w = first.shape[:2]
    nrows = (len(images) + ncols - 1) // ncols
    out = np.full((nrows * h + (nrows + 1) * pad, ncols * w + (ncols + 1) * pad, 3), 24, np.uint8)
    for k, im in enumerate(images):
        im = _fit(_rgb3(im), h, w)
        r, c = divmod(k, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = im
    return out


def _fit(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """``image`` scaled to fit an ``h`` x ``w`` cell, aspect kept, centred on the background."""
    ih, iw = image.shape[:2]
    if (ih, iw) == (h, w):
        return image
    r = min(h / ih, w / iw)
    nh, nw = max(1, round(ih * r)), max(1, round(iw * r))
    scaled = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
    cell = np.full((h, w, 3), 24, np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    cell[y : y + nh, x : x + nw] = scaled
    return cell


def scatter_plot(
    path,
    series: dict[str, list[tuple[float, float, str]]],
    xlabel: str,
    ylabel: str,
    title: str,
    xlog: bool = False,
) -> None:
    """A PNG of labelled points joined by a line per series: ``{name: [(x, y, point label)]}``,
    each series sorted by x (matplotlib, Agg backend; the file is written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vat.io import atomic_path

    fig, ax = plt.subplots(figsize=(5.0, 3.6), dpi=120)
    for name, pts in series.items():
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name)
        for x, y, text in pts:
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if xlog:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def roc_plot(path, curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, float]]], title: str) -> None:
    """A PNG with one panel per method of one-vs-rest ROC curves, one per class:
    ``{method: {class name: (fpr, tpr, auc)}}`` (classes without a curve are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vat.io import atomic_path

    n = max(len(curves), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.4), dpi=120, squeeze=False)
    for ax, (method, per_class) in zip(axes[0], curves.items(), strict=False):
        for k, (name, (fpr, tpr, auc)) in enumerate(per_class.items()):
            if len(fpr):
                colour = np.array(class_colour(k)) / 255 * 0.8
                ax.plot(fpr, tpr, color=colour, lw=1.2, label=f"{name} {auc:.2f}")
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=method, xlim=(0, 1),
               ylim=(0, 1.02))  # fmt: skip
        ax.legend(fontsize=6, title="AUC", title_fontsize=6, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
