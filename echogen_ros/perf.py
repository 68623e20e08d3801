"""Measurement helpers shared by the benchmark commands (inference and training)."""

from __future__ import annotations

import time

import numpy as np


def matmul_peak(dtype, size: int = 1024, repeats: int = 20) -> float:
    """Measured FLOP/s of a size×size matmul in `dtype` on this machine (the denominator of MFU)."""
    import torch

    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))
