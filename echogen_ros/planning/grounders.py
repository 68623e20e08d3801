"""Where the planner's boxes come from: the EchoGen model, or known objects (ground truth).

Both give `Detection`s best first; two close candidates mean the phrase is ambiguous in this frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from echogen_ros.domain import words
from echogen_ros.model.layout import Detection, box_iou
from echogen_ros.planning.commands import PlanningError
from echogen_ros.planning.phrases import KnownObject, resolve

# a runner-up (another object: `ground` gives distinct boxes) scoring at least this fraction of the best is a
# rival. Chosen on the world's test split with the embedded model (60 scenes; training/experiments/alike_objects.py):
# at 0.5 a bare category the scene has several of ("the cup", two cups) is flagged 46 % of the time and one it
# has once 1.1 %; referring expressions are flagged 5.9 % of the time, and those flagged answers are right
# 68 % of the time against 98.9 % for the rest. At 0.8: 16 %, 0.6 %, 2.1 %; at 0.4: 64 %, 2.8 %, 9.1 %.
AMBIGUITY_RATIO = 0.5


class Grounder(Protocol):
    def ground(self, image: np.ndarray, phrase: str, top_k: int = 2) -> list[Detection]: ...


class ModelGrounder:
    """Grounding with EchoGen (any model directory, including the embedded default)."""

    def __init__(self, model) -> None:
        self.model = model

    def ground(self, image: np.ndarray, phrase: str, top_k: int = 2) -> list[Detection]:
        """The model's boxes for `phrase` in the vocabulary's words; PlanningError for a phrase that names no
        object the model knows (it would answer with a box on something else)."""
        reading = words.read(phrase)
        if reading.problem:
            raise PlanningError(reading.problem)
        return self.model.ground(image, reading.text, top_k=top_k)


class KnownObjectsGrounder:
    """Grounding by resolving phrases against known objects (score 1 for every match)."""

    def __init__(self, objects: Sequence[KnownObject], height: int) -> None:
        self.objects, self.height = list(objects), height

    def ground(self, image: np.ndarray, phrase: str, top_k: int = 2) -> list[Detection]:
        found = resolve(phrase, self.objects, float(self.height))
        return [Detection(self.objects[i].box, 1.0, phrase) for i in found[:top_k]]


def is_ambiguous(detections: Sequence[Detection], ratio: float = AMBIGUITY_RATIO) -> bool:
    """Two candidates on different boxes, the runner-up scoring at least `ratio` of the best."""
    if len(detections) < 2:
        return False
    best, second = detections[0], detections[1]
    return second.score >= ratio * best.score and box_iou(best.box, second.box) < 0.5
