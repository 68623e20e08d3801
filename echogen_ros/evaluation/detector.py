"""An independent, classical detector of the tabletop world's objects (OpenCV colour segmentation and
shape rules), used to grade imagined images — never the model grading itself.

Foreground: pixels whose chroma differs from the table's (the image's median colour, which the table
dominates), that are much brighter than it (white objects), or brighter than the table around them (the
shaded faces of white objects); shadows only darken, so they stay out.
Each connected region is one object; its colour is the catalogue's nearest to its median chroma, its
category the one whose outline and interior tones, drawn by the world's renderer into the region's box, it
matches best (`shapes`): a region no category's shape fits (a flat painted rectangle, an ellipse where a cup
should be) is not detected. The score is that match's (`shapes.Match.score`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from echogen_ros.evaluation.shapes import best_match
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
        region = labels[y : y + h, x : x + w] == k
        pixels = image[y : y + h, x : x + w]
        colour = _colour(pixels, region)
        matched = best_match(pixels, region, colour)
        if matched is None:
            continue
        x1, y1, x2, y2 = matched.box  # the whole object: past the region where its near-black parts were missed
        box = (max(0, x + x1), max(0, y + y1), min(image.shape[1], x + x2), min(image.shape[0], y + y2))
        found.append(Found(matched.category, colour, box, matched.score))
    return found
