"""Drawing labelled boxes on RGB images (demo output, debug images, benchmark grids)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 64, 64),
    (64, 200, 255),
    (255, 220, 40),
    (120, 255, 120),
    (255, 120, 255),
    (255, 160, 60),
)


def draw_boxes(
    image: np.ndarray, boxes: Sequence[Sequence[float]], labels: Sequence[str], thickness: int = 2
) -> np.ndarray:
    """A copy of the RGB `image` with each box outlined and its label written above it."""
    out = np.ascontiguousarray(image).copy()
    height, width = out.shape[:2]
    font_scale = max(0.35, min(width, height) / 900.0)
    for k, (box, label) in enumerate(zip(boxes, labels)):
        colour = PALETTE[k % len(PALETTE)]
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), colour, thickness, lineType=cv2.LINE_AA)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(height - base - 1, y2 + th + 4)
        tx = max(0, min(x1, width - tw - 2))
        cv2.rectangle(out, (tx, ty - th - 2), (tx + tw + 2, ty + base), (0, 0, 0), -1)
        cv2.putText(out, label, (tx + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, 1, cv2.LINE_AA)
    return out
