"""Decompression bombs for the tests: a small PNG whose header claims a huge image (a decoder that trusts
it allocates width x height x 3 bytes)."""

from __future__ import annotations

import cv2
import numpy as np


def png_claiming(width: int, height: int) -> bytes:
    """A 64 x 64 black PNG whose IHDR says width x height (its CRC no longer matches: never decodable)."""
    data = bytearray(cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)
