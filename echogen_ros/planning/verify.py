"""Verifying a frame against a goal: each relation judged geometrically, with a score and a reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from echogen_ros.domain.relations import Truth, relation_margin, relation_score, relation_truth
from echogen_ros.model.layout import Detection, Layout, assign_boxes, box_iou, label_groups
from echogen_ros.planning.commands import Command
from echogen_ros.planning.grounders import Grounder, NotFound, is_ambiguous

SATISFIED, NOT_SATISFIED, CANNOT_TELL = "satisfied", "not_satisfied", "cannot_tell"
LAYOUT_IOU = 0.5  # an object is where the goal layout wants it when IoU ≥ this


@dataclass(frozen=True)
class Verdict:
    status: str  # satisfied | not_satisfied | cannot_tell
    score: float  # 0..1
    reason: str
    relation: str | None = None
    target: str = ""
    anchors: tuple[str, ...] = ()

    @property
    def satisfied(self) -> bool:
        return self.status == SATISFIED

    def to_json(self) -> dict:
        return {**asdict(self), "anchors": list(self.anchors), "satisfied": self.satisfied}


@dataclass(frozen=True)
class Grounded:
    """A phrase as the planner sees it: its best box (None: not found), whether a close rival makes it
    ambiguous, and the grounder's reason when it was not found."""

    phrase: str
    detection: Detection | None
    ambiguous: bool = False
    why: str = ""
    presence: float = 0.0  # not found: the probability that it is there all the same


def judge(
    command: Command,
    target: Detection | None,
    anchors: Sequence[Detection | None],
    height: int,
    presence: float = 0.0,
) -> Verdict:
    """The verdict for a command given the grounded target and anchors (None: not found; then `presence` is
    the probability that the target is there all the same, so "it is gone" is said with 1 − that)."""
    base = {"relation": command.relation, "target": command.target, "anchors": command.anchors}
    found = target is not None
    if command.action == "find":
        if found:
            return Verdict(SATISFIED, target.score, f"found {command.target}", **base)
        return Verdict(NOT_SATISFIED, 1 - presence, f"{command.target} not found", **base)
    if command.action == "pick":
        if found:
            return Verdict(NOT_SATISFIED, target.score, f"{command.target} is still in view", **base)
        return Verdict(SATISFIED, 1 - presence, f"{command.target} is no longer in view", **base)
    missing = [p for p, d in zip((command.target, *command.anchors), (target, *anchors)) if d is None]
    if missing:
        return Verdict(CANNOT_TELL, 0.0, f"cannot find {', '.join(missing)} in the frame", **base)
    boxes = [d.box for d in anchors]
    margin = relation_margin(command.relation, target.box, boxes, height)
    truth = relation_truth(command.relation, target.box, boxes, height)
    where = f"{command.relation} {' and '.join(command.anchors)}"
    detail = f"(margin {margin:.2f}; >= 1 is clear, <= -1 clearly not)"
    if truth is Truth.TRUE:
        return Verdict(SATISFIED, relation_score(margin), f"{command.target} is {where} {detail}", **base)
    if truth is Truth.FALSE:
        return Verdict(NOT_SATISFIED, relation_score(margin), f"{command.target} is not {where} {detail}", **base)
    return Verdict(
        CANNOT_TELL, relation_score(margin), f"too close to call whether {command.target} is {where} {detail}", **base
    )


def detections_of(grounder: Grounder, image: np.ndarray, phrase: str, top_k: int) -> tuple[list[Detection], str, float]:
    """The grounder's boxes for `phrase` and, when there are none it saw, why and the probability that it is
    there all the same; a phrase or frame it could not read at all (unknown words, out of domain) raises
    NotFound: nothing can be said about the scene then."""
    try:
        return grounder.ground(image, phrase, top_k=top_k), "", 0.0
    except NotFound as exc:
        if not exc.observed:
            raise
        return [], str(exc), exc.presence


def ground_phrase(grounder: Grounder, image: np.ndarray, phrase: str) -> Grounded:
    """The best detection of `phrase` (None if none, with the grounder's reason) and whether a close rival
    makes it ambiguous."""
    detections, why, presence = detections_of(grounder, image, phrase, top_k=2)
    return Grounded(phrase, detections[0] if detections else None, is_ambiguous(detections), why, presence)


def verify_command(grounder: Grounder, image: np.ndarray, command: Command) -> Verdict:
    """Does `image` satisfy `command`? A referent not found is the verdict's reason, with the grounder's why."""
    grounded = [ground_phrase(grounder, image, phrase) for phrase in (command.target, *command.anchors)]
    target, anchors = grounded[0].detection, [g.detection for g in grounded[1:]]
    verdict = judge(command, target, anchors, image.shape[0], grounded[0].presence)
    whys = [f"{g.phrase}: {g.why}" for g in grounded if g.detection is None and g.why]
    if whys:
        return replace(verdict, reason=f"{verdict.reason} ({'; '.join(whys)})")
    ambiguous = [g.phrase for g in grounded if g.ambiguous]
    all_found = all(g.detection is not None for g in grounded)
    if ambiguous and command.action == "put" and all_found:  # a missing object is the reason, not a rival
        names = ", ".join(ambiguous)
        reason = f"ambiguous: {names} {'matches' if len(ambiguous) == 1 else 'match'} more than one object, so " \
                 f"which one is meant cannot be told; as grounded, {verdict.reason}"  # fmt: skip
        return replace(verdict, status=CANNOT_TELL, reason=reason)
    return verdict


def verify_layout(grounder: Grounder, image: np.ndarray, layout: Layout) -> tuple[Verdict, list[float]]:
    """Is every object of a goal layout where the layout puts it? (IoU ≥ 0.5 each.) A label the layout names
    n times (two red cups) is grounded once for its n best distinct boxes, matched to those objects by IoU."""
    ious = [0.0] * len(layout.objects)
    for label, where in label_groups([o.label for o in layout.objects]).items():
        found = detections_of(grounder, image, label, top_k=len(where))[0]
        match = assign_boxes([layout.objects[i].box for i in where], [d.box for d in found])
        for i, j in zip(where, match):
            ious[i] = box_iou(layout.objects[i].box, found[j].box) if j is not None else 0.0
    misplaced = [o.label for o, iou in zip(layout.objects, ious) if iou < LAYOUT_IOU]
    score = float(np.mean(ious)) if ious else 0.0
    if misplaced:
        return Verdict(NOT_SATISFIED, score, f"not where the goal puts them: {', '.join(misplaced)}"), ious
    return Verdict(SATISFIED, score, "every object is where the goal layout puts it"), ious
