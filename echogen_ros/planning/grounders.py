"""Where the planner's boxes come from: the EchoGen model, or known objects (ground truth).

Both give `Detection`s best first; two close candidates mean the phrase is ambiguous in this frame. The model's
grounder gives only boxes a planner may act on (probability at or above its threshold) and raises `NotFound`,
with the model's reason, when there is none. Both also list the whole scene (`scene`: every object as
"colour category" and box), which the planner keeps in the goal layout and keeps the goal box clear of; a
grounder that cannot list a scene says so with None.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Protocol

import numpy as np

from echogen_ros.domain import words
from echogen_ros.model.layout import Detection, box_iou
from echogen_ros.model.listing import finish
from echogen_ros.planning.commands import PlanningError
from echogen_ros.planning.phrases import KnownObject, resolve

# a runner-up (another object: `ground` gives distinct boxes) scoring at least this fraction of the best is a
# rival. Chosen on the world's test split with the embedded model's raw scores (60 scenes;
# training/experiments/alike_objects.py): at 0.5 a bare category the scene has several of ("the cup", two cups)
# is flagged 46 % of the time and one it has once 1.1 %; referring expressions are flagged 5.9 % of the time,
# and those flagged answers are right 68 % of the time against 98.9 % for the rest. At 0.8: 16 %, 0.6 %, 2.1 %;
# at 0.4: 64 %, 2.8 %, 9.1 %. The model's grounder gives a runner-up only at or above its threshold, so
# there two boxes that each reach the threshold are rivals.
AMBIGUITY_RATIO = 0.5


class NotFound(PlanningError):
    """No referent a planner may act on, and why. `observed`: the model read the phrase and the frame and saw
    nothing it is sure of (nothing there, or not sure enough): a fact about the scene ("is the cup gone?").
    False when the phrase or the frame could not be read at all (unknown words, out of domain). `presence`: the
    model's probability that its best box is the referent all the same (0 when it did not look)."""

    def __init__(self, reason: str, observed: bool, presence: float = 0.0) -> None:
        super().__init__(reason)
        self.observed, self.presence = observed, presence


class Grounder(Protocol):
    def ground(self, image: np.ndarray, phrase: str, top_k: int = 2) -> list[Detection]: ...

    def scene(self, image: np.ndarray) -> list[Detection] | None:
        """Every object in the frame (label "colour category", box, score); None: this grounder cannot list
        a scene."""
        ...


def lists_scenes(model) -> bool:
    """Whether `model` lists a frame's objects (`EchoGen.scene_steps`: every EchoGen does, by label)."""
    return callable(getattr(model, "scene_steps", None))


class ModelGrounder:
    """Grounding with EchoGen (any model directory, including the embedded default): `model.find` at
    `threshold`, a probability (None: the model's default, `model.finding.DEFAULT_THRESHOLD`)."""

    def __init__(self, model, threshold: float | None = None) -> None:
        if threshold is None:
            from echogen_ros.model.finding import DEFAULT_THRESHOLD  # torch; the model has loaded it already

            threshold = DEFAULT_THRESHOLD
        self.model, self.threshold = model, threshold

    def ground(self, image: np.ndarray, phrase: str, top_k: int = 2) -> list[Detection]:
        """The boxes for `phrase` whose probability reaches the threshold, best first; NotFound with the
        model's reason when none does (unknown words, a frame out of domain, nothing there, not sure enough)."""
        finding = self.model.find(image, phrase, self.threshold, top_k)
        if not finding.found:
            unread = finding.out_of_domain or words.read(phrase).problem is not None
            raise NotFound(finding.reason, observed=not unread, presence=finding.confidence)
        return list(finding.detections)

    def scene(self, image: np.ndarray) -> list[Detection] | None:
        """The model's inventory of the frame (`parse_scene`): the objects whose probability reaches the
        threshold (by label, `label_listing`); None when the model cannot list a scene; NotFound when the frame
        is out of its domain."""
        return finish(self.scene_steps(image))

    def scene_steps(self, image: np.ndarray) -> Generator[None, None, list[Detection] | None]:
        """`scene` in the model's steps (`EchoGen.scene_steps`: a generator that yields between them), for a
        caller that grounds in between."""
        if not lists_scenes(self.model):
            return None
        inventory = yield from self.model.scene_steps(image, self.threshold)
        if inventory.out_of_domain:
            raise NotFound(inventory.reason, observed=False)
        return list(inventory.objects)


class KnownObjectsGrounder:
    """Grounding by resolving phrases against known objects (score 1 for every match)."""

    def __init__(self, objects: Sequence[KnownObject], height: int) -> None:
        self.objects, self.height = list(objects), height

    def ground(self, image: np.ndarray, phrase: str, top_k: int = 2) -> list[Detection]:
        found = resolve(phrase, self.objects, float(self.height))
        return [Detection(self.objects[i].box, 1.0, phrase) for i in found[:top_k]]

    def scene(self, image: np.ndarray) -> list[Detection]:
        """Every known object, named as a layout names it ("red cup"; the category alone without a colour)."""
        return [Detection(o.box, 1.0, " ".join(filter(None, (o.colour, o.category)))) for o in self.objects]


def is_ambiguous(detections: Sequence[Detection], ratio: float = AMBIGUITY_RATIO) -> bool:
    """Two candidates on different boxes, the runner-up scoring at least `ratio` of the best."""
    if len(detections) < 2:
        return False
    best, second = detections[0], detections[1]
    return second.score >= ratio * best.score and box_iou(best.box, second.box) < 0.5
