"""An independent, classical detector of the tabletop world's objects (OpenCV colour segmentation and
shape rules), used to grade imagined images — never the model grading itself.

Foreground: pixels whose chroma differs from the table's (the image's median colour, which the table
dominates), that are much brighter than it (white objects), or brighter than the table around them (the
shaded faces of white objects); shadows only darken, so they stay out.
Each connected region is one object; its category comes from box aspect ratio, fill ratio and the
position of its mass; its colour from the median hue of its saturated pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from echogen_ros.world import catalog

MIN_AREA_FRACTION = 0.0008  # regions smaller than this share of the image are noise


@dataclass(frozen=True)
class Found:
    category: str
    colour: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 (exclusive) in pixels
    score: float


def foreground(image: np.ndarray) -> np.ndarray:
    """uint8 mask of object pixels."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    table = np.median(lab.reshape(-1, 3), axis=0)
    chroma = np.hypot(lab[..., 1] - table[1], lab[..., 2] - table[2])
    brighter = lab[..., 0] - table[0]
    # white objects' shaded faces are only a little brighter than the table: compare with the local table
    lightness = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[..., 0]
    size = max(3, (min(image.shape[:2]) // 7) | 1)
    local = lightness.astype(np.float32) - cv2.medianBlur(lightness, size).astype(np.float32)
    mask = ((chroma > 22) | (brighter > 45) | (local > 18)).astype(np.uint8) * 255
    k = max(1, round(min(image.shape[:2]) / 240))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((k + 1, k + 1), np.uint8))
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((2 * k + 1, 2 * k + 1), np.uint8))


def _category(region: np.ndarray) -> tuple[str, float]:
    """Category and a confidence from a binary region cropped to its box."""
    h, w = region.shape
    aspect = w / max(h, 1)
    fill = float(region.mean() / 255)
    rows = region.sum(axis=1)
    widest = float(np.flatnonzero(rows >= 0.97 * rows.max()).mean() + 0.5) / h  # plate 0.5, bowl 0.3
    right = float(region[:, int(0.8 * w) :].mean() / 255)  # a cup's handle leaves its right edge sparse
    rules = [
        ("bottle", aspect < 0.6),
        ("banana", aspect > 1.95 or fill < 0.58),
        ("box", 1.15 < aspect < 1.6 and fill > 0.88),
        ("block", 0.8 < aspect < 1.25 and fill > 0.86),
        ("cup", 0.7 < aspect < 1.1 and right < 0.45),
        ("ball", 0.8 < aspect < 1.25),
        ("bowl", 1.4 < aspect < 1.95 and widest < 0.42),
        ("plate", 1.4 < aspect < 1.95),
    ]
    for name, matched in rules:
        if matched:
            return name, 0.9
    return "box" if fill > 0.85 else "ball", 0.3


def _colour(image: np.ndarray, region: np.ndarray) -> str:
    pixels = image[region > 0].astype(np.float32)
    if len(pixels) == 0:
        return "white"
    median = np.median(pixels, axis=0)
    chroma = median / max(median.sum(), 1.0)
    return min(
        catalog.COLOURS,
        key=lambda c: float(np.abs(chroma - np.divide(catalog.COLOURS[c], sum(catalog.COLOURS[c]))).sum()),
    )


def detect(image: np.ndarray) -> list[Found]:
    """Every object region in an RGB uint8 image, with category, colour, box and score."""
    mask = foreground(image)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_area = MIN_AREA_FRACTION * image.shape[0] * image.shape[1]
    found = []
    for k in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[k])
        if area < min_area:
            continue
        region = (labels[y : y + h, x : x + w] == k).astype(np.uint8) * 255
        category, score = _category(region)
        found.append(Found(category, _colour(image[y : y + h, x : x + w], region), (x, y, x + w, y + h), score))
    return found
