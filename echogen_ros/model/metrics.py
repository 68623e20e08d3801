"""Grounding and layout-agreement metrics (Ref-L4 protocol), shared by `echogen eval` and training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from echogen_ros.model.layout import box_iou

MACC_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))  # 0.5:0.95


def grounding_accuracy(ious: Sequence[float]) -> dict[str, float]:
    """Acc@0.5, Acc@0.75, Acc@0.9 and mAcc (mean Acc over IoU 0.5:0.95) of per-expression IoUs.

    >>> grounding_accuracy([1.0, 0.6])["acc@0.5"], grounding_accuracy([1.0, 0.6])["acc@0.75"]
    (1.0, 0.5)
    """
    values = np.asarray(list(ious), dtype=np.float64)
    if values.size == 0:
        return {"acc@0.5": 0.0, "acc@0.75": 0.0, "acc@0.9": 0.0, "macc": 0.0, "count": 0}
    acc = {t: float((values >= t).mean()) for t in MACC_THRESHOLDS}
    return {
        "acc@0.5": acc[0.5],
        "acc@0.75": acc[0.75],
        "acc@0.9": acc[0.9],
        "macc": float(np.mean(list(acc.values()))),
        "count": int(values.size),
    }


def matched_ious(targets: Sequence[Sequence[float]], predicted: Sequence[Sequence[float]]) -> list[float]:
    """IoU of each target box with the prediction of the same index (objects grounded by label)."""
    return [box_iou(t, p) for t, p in zip(targets, predicted)]
