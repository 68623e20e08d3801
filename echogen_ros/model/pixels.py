"""Pixel scaling, written once: uint8 0..255 ↔ the model's [-1, 1]. The same affine map the exported engines
apply (`engines/export.py` writes SCALE and OFFSET into their preprocessing)."""

from __future__ import annotations

import numpy as np
import torch

HALF = 127.5
SCALE = 1 / HALF
OFFSET = -1.0


def unit_array(u8: np.ndarray) -> np.ndarray:
    """uint8 values → float32 in [-1, 1]."""
    return u8.astype(np.float32) * SCALE + OFFSET


def unit_tensor(u8: torch.Tensor) -> torch.Tensor:
    """uint8 (or integer-valued float) values → float32 in [-1, 1]."""
    return u8.float() * SCALE + OFFSET


def to_uint8(unit: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → uint8 (clamped, rounded): the inverse of `unit_tensor` on its values."""
    return ((unit.clamp(-1, 1) - OFFSET) * HALF).round().to(torch.uint8)
