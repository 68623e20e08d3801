"""Where the planner's boxes come from: the EchoGen model, or known objects (ground truth).

Both give `Detection`s best first; two close candidates mean the phrase is ambiguous in this frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from echogen_ros.model.layout import Detection, box_iou
from echogen_ros.planning.phrases import KnownObject, resolve

AMBIGUITY_RATIO = 0.8  # a runner-up scoring at least this fraction of the best is a rival


class Grounder(Protocol):
    def ground(self, image: np.ndarray, phrase: str, top_k: int = 2) -> list[Detection]: ...


class ModelGrounder:
    """Grounding with EchoGen (any model directory, including the embedded default)."""

    def __init__(self, model) -> None:
        self.model = model

    def ground(self, image: np.ndarray, phrase: str, top_k: int = 2) -> list[Detection]:
        return self.model.ground(image, phrase, top_k=top_k)


class KnownObjectsGrounder:
    """Grounding by resolving phrases against known objects (score 1 for every match)."""

    def __init__(self, objects: Sequence[KnownObject], height: int) -> None:
        self.objects, self.height = list(objects), height

    def ground(self, image: np.ndarray, phrase: str, top_k: int = 2) -> list[Detection]:
        found = resolve(phrase, self.objects, float(self.height))
        return [Detection(self.objects[i].box, 1.0, phrase) for i in found[:top_k]]


def is_ambiguous(detections: Sequence[Detection]) -> bool:
    """Two candidates with close scores on different boxes."""
    if len(detections) < 2:
        return False
    best, second = detections[0], detections[1]
    return second.score >= AMBIGUITY_RATIO * best.score and box_iou(best.box, second.box) < 0.5
