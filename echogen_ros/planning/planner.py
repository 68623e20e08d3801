"""The plan: instruction + frame → grounded target/anchors → goal box → goal layout → verdict now."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from echogen_ros.model.layout import DISTINCT_IOU, Detection, Layout, LayoutObject, assign_boxes, box_iou
from echogen_ros.planning.commands import Command, PlanningError, parse_command
from echogen_ros.planning.goal import place_goal
from echogen_ros.planning.grounders import Grounder
from echogen_ros.planning.verify import Verdict, ground_phrase, judge

Box = tuple[float, float, float, float]
NOT_LISTED = ("the rest of the scene was not listed (this model cannot list a scene): the goal layout holds only "
              "the target and its anchors, and the goal box keeps clear of them alone")  # fmt: skip


@dataclass
class Plan:
    command: Command
    width: int
    height: int
    target: Detection
    anchors: list[Detection]
    goal_box: Box | None  # None for "pick" (the target leaves the table) and "find" (nothing moves)
    goal_layout: Layout
    verdict: Verdict  # does the current frame already satisfy the command?
    ambiguities: list[str] = field(default_factory=list)
    scene: tuple[Detection, ...] | None = None  # every object listed in the frame; None: the scene was not listed
    notes: list[str] = field(default_factory=list)  # what the goal layout could not take from the scene

    def to_json(self) -> dict:
        return {
            "action": self.command.action,
            "target": {"phrase": self.command.target, "box": _round(self.target.box),
                       "goal_box": _round(self.goal_box) if self.goal_box else None,
                       "score": round(self.target.score, 4)},
            "anchors": [{"phrase": p, "box": _round(d.box), "score": round(d.score, 4)}
                        for p, d in zip(self.command.anchors, self.anchors)],
            "relation": self.command.relation,
            "goal_layout": self.goal_layout.to_json(),
            "satisfied_now": self.verdict.satisfied,
            "verdict": self.verdict.status,
            "verdict_reason": self.verdict.reason,
            "ambiguities": self.ambiguities,
            "scene": {"listed": self.scene is not None,
                      "objects": [d.to_json() for d in self.scene] if self.scene is not None else []},
            "notes": self.notes,
        }  # fmt: skip


def _round(box) -> list[float]:
    return [round(float(v), 2) for v in box]


def _caption(labels: Sequence[str]) -> str:
    names = [label[4:] if label.startswith("the ") else label for label in labels]
    return "a table with " + ", ".join(names) + "."


def plan(image: np.ndarray, instruction: str | Command, grounder: Grounder) -> Plan:
    """Plan `instruction` in `image`: the target and anchors found by `grounder`, then the goal layout of the
    whole scene `grounder.scene` lists (the target moved clear of every object, or removed when picked up; the
    rest where they are, named as observed). A grounder that cannot list a scene gives a goal of the target and
    anchors alone, and the plan says so. PlanningError when a referent is not found (with the grounder's reason:
    unknown words, out of domain, not there, not sure) or no free place satisfies the relation."""
    command = instruction if isinstance(instruction, Command) else parse_command(instruction)
    height, width = image.shape[:2]
    grounded, ambiguities = [], []
    for phrase in (command.target, *command.anchors):
        found = ground_phrase(grounder, image, phrase)
        if found.detection is None:
            raise PlanningError(f"cannot find {phrase!r} in the image" + (f": {found.why}" if found.why else ""))
        if found.ambiguous:
            ambiguities.append(f"{phrase!r} matches more than one object; using the best-scoring one")
        grounded.append(found.detection)
    target, anchors = grounded[0], grounded[1:]
    verdict = judge(command, target, anchors, height)
    scene = grounder.scene(image)
    named, others, notes = _in_scene(command, grounded, scene)
    goal_box = place_target(command, grounded, others, width, height) if command.action == "put" else None
    objects = [] if command.action == "pick" else [LayoutObject(named[0], goal_box or target.box)]
    objects += [LayoutObject(label, a.box) for label, a in zip(named[1:], anchors)] + list(others)
    if not objects:
        what = "the only object in view" if scene is not None else f"the only known object; {NOT_LISTED}"
        raise PlanningError(f"the goal scene is empty: nothing to imagine after picking up {what}")
    layout = Layout(width, height, tuple(objects), _caption([o.label for o in objects]))
    listed = tuple(scene) if scene is not None else None
    return Plan(command, width, height, target, anchors, goal_box, layout, verdict, ambiguities, listed, notes)


def place_target(
    command: Command, grounded: Sequence[Detection], others: Sequence[LayoutObject], width: int, height: int
) -> Box:
    """A put-command's goal box for its grounded target and anchors (`grounded`, in the command's order), clear
    of the scene's `others`; PlanningError when no free place satisfies the relation."""
    target, anchors = grounded[0], grounded[1:]
    return place_goal(command.relation, target.box, [a.box for a in anchors], [o.box for o in others], width, height)


def others_in_scene(command: Command, grounded: Sequence[Detection], scene: Sequence[Detection] | None):
    """The listed objects of `scene` that are not the command's referents (none when the scene was not listed)."""
    return _in_scene(command, grounded, scene)[1]


def _in_scene(
    command: Command, grounded: Sequence[Detection], scene: Sequence[Detection] | None
) -> tuple[list[str], list[LayoutObject], list[str]]:
    """The referents' labels in the goal layout, the scene's other objects, and notes. A referent is the listed
    object its box matches one to one (IoU >= DISTINCT_IOU) and takes that object's label ("red cup"); one the
    listing lacks keeps its phrase. A listed object overlapping a referent that much is that referent."""
    phrases = [command.target, *command.anchors]
    if scene is None:
        return phrases, [], [NOT_LISTED]
    match = assign_boxes([d.box for d in grounded], [o.box for o in scene])
    match = [j if j is not None and box_iou(d.box, scene[j].box) >= DISTINCT_IOU else None
             for d, j in zip(grounded, match)]  # fmt: skip
    labels = [scene[j].label if j is not None else phrase for phrase, j in zip(phrases, match)]
    notes = [f"{phrase!r} is not among the {len(scene)} objects listed in the frame; drawn as named"
             for phrase, j in zip(phrases, match) if j is None]  # fmt: skip
    others = [LayoutObject(o.label, o.box) for k, o in enumerate(scene)
              if k not in match and all(box_iou(o.box, d.box) < DISTINCT_IOU for d in grounded)]  # fmt: skip
    return labels, others, notes
