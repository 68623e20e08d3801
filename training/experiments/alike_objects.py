"""How the grounder tells alike objects apart, on an export written by `echogen world` (first N scenes):

- alike objects: objects whose label ("red cup") the scene names more than once, found (IoU ≥ 0.5) by
  `EchoGen.ground_layout` (the label's n best distinct boxes, matched by IoU: what the cycle check and goal
  verification use) and by one query per object (`ground_many`: every "red cup" gets the same box);
- the ambiguity flag (`planning.grounders.is_ambiguous` on `ground(top_k=2)`, what verification reports as
  "ambiguous"): how often it is raised on the world's referring expressions (each names one object), the
  accuracy of the answers it flags and of those it does not, and how often it is raised on a bare category
  ("the cup") that the scene has more than one of (it should be) and one of (it should not).

    python -m experiments.alike_objects [MODEL] --data DIR [--scenes 60] [--ratios 0.8 0.5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import box_iou
from echogen_ros.planning.grounders import AMBIGUITY_RATIO, is_ambiguous
from experiments.world_export import read_scenes

HIT_IOU = 0.5


def measure(model: EchoGen, directory: Path, scenes: int, ratios: Sequence[float] = (AMBIGUITY_RATIO,)) -> dict:
    """The report; the ambiguity flag's figures for each score ratio in `ratios` (verification's is
    AMBIGUITY_RATIO)."""
    chosen = read_scenes(directory, scenes)
    together, one_by_one, flags, bare = [], [], [], []
    for scene in chosen:
        image = scene.image()
        layout = scene.layout(model.max_objects)
        counts = Counter(obj.label for obj in layout.objects)
        if layout.objects and max(counts.values()) > 1:
            labels = [obj.label for obj in layout.objects]
            matched, single = model.ground_layout(image, layout), model.ground_many(image, labels)
            for obj, a, b in zip(layout.objects, matched, single):
                if counts[obj.label] > 1:
                    together.append(box_iou(obj.box, a.box) >= HIT_IOU)
                    one_by_one.append(box_iou(obj.box, b.box) >= HIT_IOU)
        for object_id, sentence in scene.expressions:  # every referred object, past max_objects
            found = model.ground(image, sentence, top_k=2)
            flags.append((found, box_iou(scene.box(object_id), found[0].box) >= HIT_IOU))
        for category, count in Counter(o.category for o in scene.objects[: model.max_objects]).items():
            bare.append((count > 1, model.ground(image, f"the {category}", top_k=2)))
    right = np.array([r for _, r in flags], dtype=bool)

    def share(values) -> float | None:
        return float(np.mean(values)) if len(values) else None

    def flag_rates(ratio: float) -> dict:
        flagged = np.array([is_ambiguous(found, ratio) for found, _ in flags], dtype=bool)
        several = [is_ambiguous(found, ratio) for many, found in bare if many]
        one = [is_ambiguous(found, ratio) for many, found in bare if not many]
        return {
            "expressions": {
                "count": len(flags),
                "flagged_ambiguous": share(flagged),
                "accuracy_flagged": share(right[flagged]),
                "accuracy_not_flagged": share(right[~flagged]),
            },
            "bare_category_of_several": {"count": len(several), "flagged_ambiguous": share(several)},
            "bare_category_of_one": {"count": len(one), "flagged_ambiguous": share(one)},
        }

    return {
        "scenes": len(chosen),
        "alike_objects": {
            "count": len(together),
            "found_by_ground_layout": share(together),
            "found_one_query_each": share(one_by_one),
        },
        "ambiguity": {str(ratio): flag_rates(ratio) for ratio in ratios},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, nargs="?", help="a model directory (default: the embedded model)")
    parser.add_argument("--data", type=Path, required=True, help="a directory written by `echogen world`")
    parser.add_argument("--scenes", type=int, default=60, help="the first N scenes")
    parser.add_argument(
        "--ratios", type=float, nargs="+", default=[AMBIGUITY_RATIO], help="ambiguity score ratios to report"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.scenes < 1:
        parser.error("--scenes must be at least 1")
    if not all(0 < r <= 1 for r in args.ratios):
        parser.error("--ratios must lie in (0, 1]")
    try:
        report = measure(EchoGen.load(args.model), args.data, args.scenes, args.ratios)
    except (FileNotFoundError, ValueError) as error:
        print(f"alike_objects: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
