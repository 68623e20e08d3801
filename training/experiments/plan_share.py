"""How many of the world's instructions plan, and are the refusals right? Scenes drawn in memory (`world_sample`):
every 'put' and 'pick up' instruction of the first N scenes planned (`planning.planner.plan`) three ways:

- truth: the world's boxes ground the phrases and list the scene (`KnownObjectsGrounder`); every "no free
  place" is checked by brute force (a 2-px grid of every position: is any inside the frame, a margin from every
  other object, with the relation clearly true?) — a refusal with a place is a planner miss;
- truth, scene not listed: the same grounding without the listing (the control: the goal as it was before the
  planner took the whole scene, or with a model that cannot list one);
- model: the model's grounding at its threshold, and its listing where it lists scenes (`ModelGrounder`).

Per way: the share planned, refused for no free place, refused for a referent not found; of the 'put' goals, the
share whose goal box overlaps another object of the truth (the target and what it is put on aside), the share
whose target was grounded on the right object, and the share whose goal layout holds every object.

    python -m experiments.plan_share [MODEL] [--split heldout] [--seed 20261205] [--scenes 200] [--no-model] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from echogen_ros.domain.relations import MARGIN, relation_margin
from echogen_ros.model.layout import box_iou
from echogen_ros.planning.commands import PlanningError
from echogen_ros.planning.goal import CLEAR, MAX_SHARE
from echogen_ros.planning.grounders import KnownObjectsGrounder, NotFound
from echogen_ros.planning.phrases import KnownObject
from echogen_ros.planning.planner import plan
from echogen_ros.world.dataset import world_sample

GRID = 2.0  # the brute force's step, px (the planner's own fallback search steps height / 120 = 4 px)


def feasible(boxes, target: int, relation: str, anchors, width: int, height: int) -> bool:
    """Is there any position on a GRID-px grid for the target's box (its size, capped as the planner caps it)
    inside the frame, a margin from every other object (not the one it is put on), with the relation clearly
    true (margin >= CLEAR)? Written apart from the planner's search, to check its refusals."""
    t = boxes[target]
    w, h = min(t[2] - t[0], MAX_SHARE * width), min(t[3] - t[1], MAX_SHARE * height)
    pad = MARGIN * height
    xs, ys = np.meshgrid(np.arange(pad, width - pad - w, GRID), np.arange(pad, height - pad - h, GRID))
    x1, y1 = xs.ravel(), ys.ravel()
    clear = np.ones(x1.shape, dtype=bool)
    for k, o in enumerate(boxes):
        if k == target or (relation == "on" and k in anchors):
            continue
        clear &= (x1 + w + pad <= o[0]) | (o[2] + pad <= x1) | (y1 + h + pad <= o[1]) | (o[3] + pad <= y1)
    held = [boxes[j] for j in anchors]
    return any(relation_margin(relation, (x, y, x + w, y + h), held, height) >= CLEAR
               for x, y in zip(x1[clear], y1[clear]))  # fmt: skip


class Unlisted:
    """A grounder's phrases without its listing of the scene (the control)."""

    def __init__(self, grounder) -> None:
        self.grounder = grounder

    def ground(self, image, phrase: str, top_k: int = 2):
        return self.grounder.ground(image, phrase, top_k)

    def scene(self, image) -> None:
        return None


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def measure(samples, grounders: dict) -> dict:
    """The report for `samples` (world samples), one entry per grounder: name → (sample → grounder)."""
    tallies = {name: Counter() for name in grounders}
    for sample in samples:
        image, boxes = sample.image(), [tuple(map(float, b)) for b in sample.boxes()]
        for ins in (i for i in sample.instructions if i.action in ("put", "pick")):
            for name, make in grounders.items():
                _tally(tallies[name], make(sample), image, boxes, sample.labels(), ins)
    return {"scenes": len(samples), **{name: _shares(t) for name, t in tallies.items()}}


def _tally(t: Counter, grounder, image, boxes, labels, ins) -> None:
    height, width = image.shape[:2]
    t["instructions"] += 1
    t[ins.action] += 1
    try:
        result = plan(image, ins.text, grounder)
    except NotFound:
        t["not_found"] += 1
        return
    except PlanningError as exc:
        if "no free place" not in str(exc):
            t["not_found" if "cannot find" in str(exc) else "other_refusal"] += 1
            return
        t["no_free_place"] += 1
        t["no_free_place_but_a_place_exists"] += feasible(boxes, ins.target, ins.relation, ins.anchors, width, height)
        return
    t["planned"] += 1
    t[f"planned_{ins.action}"] += 1
    if ins.action != "put":
        return
    t["put_goals"] += 1
    t["target_right"] += box_iou(result.target.box, boxes[ins.target]) >= 0.5
    under = ins.anchors if ins.relation == "on" else ()
    others = [b for k, b in enumerate(boxes) if k != ins.target and k not in under]
    t["goal_on_another_object"] += any(_overlaps(result.goal_box, b) for b in others)
    t["every_object_kept"] += Counter(o.label for o in result.goal_layout.objects) == Counter(labels)


def _shares(t: Counter) -> dict:
    n, goals = t["instructions"], t["put_goals"]

    def share(key: str, of: int) -> float | None:
        return round(t[key] / of, 4) if of else None

    return {
        "instructions": n, "put": t["put"], "pick": t["pick"],
        "planned": share("planned", n), "planned_put": share("planned_put", t["put"]),
        "planned_pick": share("planned_pick", t["pick"]),
        "no_free_place": share("no_free_place", n), "not_found": share("not_found", n),
        "other_refusal": share("other_refusal", n),
        "no_free_place_but_a_place_exists": t["no_free_place_but_a_place_exists"],
        "put_goals": goals, "goal_on_another_object": share("goal_on_another_object", goals),
        "target_right": share("target_right", goals), "every_object_kept": share("every_object_kept", goals),
    }  # fmt: skip


def truth(sample) -> KnownObjectsGrounder:
    """The world's truth as a grounder (boxes in the frame's pixels, 640×480)."""
    objects = [KnownObject(o.category, tuple(map(float, b)), o.colour, o.size)
               for o, b in zip(sample.scene.objects, sample.boxes())]  # fmt: skip
    return KnownObjectsGrounder(objects, 480)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, nargs="?", help="a model directory (default: the embedded model)")
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--seed", type=int, default=20261205, help="default: the fresh held-out set's seed")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--no-model", action="store_true", help="the truth's two ways only")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.scenes < 1:
        parser.error("--scenes must be at least 1")
    try:
        samples = [world_sample(args.seed, i, args.split) for i in range(args.scenes)]
        grounders = {"truth": truth, "truth_not_listed": lambda s: Unlisted(truth(s))}
        if not args.no_model:
            from echogen_ros.model.echogen import EchoGen
            from echogen_ros.planning.grounders import ModelGrounder, lists_scenes

            model = EchoGen.load(args.model)
            grounder = ModelGrounder(model)
            grounders["model"] = lambda s: grounder
            print(f"plan_share: the model {'lists' if lists_scenes(model) else 'does not list'} scenes",
                  file=sys.stderr)  # fmt: skip
        report = measure(samples, grounders)
    except (FileNotFoundError, ValueError) as error:
        print(f"plan_share: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
