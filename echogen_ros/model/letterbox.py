"""Letterboxing: any image size ↔ the model's square frame, with exact box mapping both ways.

Shared by training and inference. The image is scaled by `size / max(w, h)`, centred and padded with
a constant grey; boxes map by the same affine transform, so `to_image(to_model(box)) == box`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """The transform from an image of `width`×`height` into a `size`×`size` model frame."""

    width: int
    height: int
    size: int

    @property
    def scale(self) -> float:
        return self.size / max(self.width, self.height)

    @property
    def content(self) -> tuple[int, int, int, int]:
        """(x0, y0, w, h) of the image inside the model frame, in model pixels."""
        w = max(1, round(self.width * self.scale))
        h = max(1, round(self.height * self.scale))
        return (self.size - w) // 2, (self.size - h) // 2, w, h

    def to_model(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """Box in image pixels → box in model pixels."""
        x0, y0, w, h = self.content
        sx, sy = w / self.width, h / self.height
        return box[0] * sx + x0, box[1] * sy + y0, box[2] * sx + x0, box[3] * sy + y0

    def to_image(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """Box in model pixels → box in image pixels (clipped to the image)."""
        x0, y0, w, h = self.content
        sx, sy = self.width / w, self.height / h
        x1, y1 = (box[0] - x0) * sx, (box[1] - y0) * sy
        x2, y2 = (box[2] - x0) * sx, (box[3] - y0) * sy
        clip_x = lambda v: min(max(v, 0.0), float(self.width))  # noqa: E731
        clip_y = lambda v: min(max(v, 0.0), float(self.height))  # noqa: E731
        return clip_x(x1), clip_y(y1), clip_x(x2), clip_y(y2)

    def normalised(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """Box in image pixels → model frame normalised to [0, 1] (what the token bins encode)."""
        return tuple(v / self.size for v in self.to_model(box))  # type: ignore[return-value]

    def from_normalised(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        return self.to_image([v * self.size for v in box])

    def apply(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 (H, W, 3) at this letterbox's size → (size, size, 3) uint8."""
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"image is {image.shape[1]}x{image.shape[0]}, letterbox expects {self.width}x{self.height}"
            )
        x0, y0, w, h = self.content
        interpolation = cv2.INTER_AREA if w < self.width else cv2.INTER_LINEAR
        out = np.full((self.size, self.size, 3), PAD_VALUE, dtype=np.uint8)
        out[y0 : y0 + h, x0 : x0 + w] = cv2.resize(image, (w, h), interpolation=interpolation)
        return out

    def crop(self, frame: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """Inverse of `apply` for a generated model frame: the content region resized to width×height (or to
        `size`, (width, height))."""
        x0, y0, w, h = self.content
        region = frame[y0 : y0 + h, x0 : x0 + w]
        return cv2.resize(region, size or (self.width, self.height), interpolation=cv2.INTER_CUBIC)


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an RGB uint8 (H, W, 3) array; raise ValueError with what is wrong."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB (H, W, 3), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if min(image.shape[:2]) < 2:
        raise ValueError(f"image is too small: {image.shape[1]}x{image.shape[0]}")
    return image
