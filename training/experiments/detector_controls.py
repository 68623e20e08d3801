"""What the classical detector (`echogen_ros.evaluation.detector`) gives pictures that need no model: the
world's own frames (it must find them: the grader's validity) and flat shapes painted into the same layouts
(it must not: they hold no object of any kind). Layout AP as `echogen eval` grades imagined scenes.

- `frame`: the scene as the world renders it;
- `painted`: `echogen eval`'s painted control (ellipses for round kinds, rectangles for the rest);
- `rectangles`, `ellipses`: every object painted as a flat rectangle, or ellipse, in its colour and box;
- `empty_table`: the empty table the painted rows are painted on.

    PYTHONPATH=training .venv/bin/python -m experiments.detector_controls --split heldout --seed 7 --scenes 60
"""

from __future__ import annotations

import argparse
import json

from echogen_ros.evaluation.controls import Case, paint, painted
from echogen_ros.evaluation.detector import detect
from echogen_ros.evaluation.layout_ap import layout_ap
from echogen_ros.model.layout import Layout, LayoutObject
from echogen_ros.world import catalog
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.render import empty_table


def world_case(seed: int, index: int, split: str) -> Case:
    """Scene `index` of the world's `split` as `echogen eval` draws its controls (the model's rows unused)."""
    sample = world_sample(seed, index, split)
    objects = tuple(LayoutObject(o.label, tuple(map(float, b))) for o, b in zip(sample.scene.objects, sample.boxes()))
    colours, categories = [o.colour for o in sample.scene.objects], [o.category for o in sample.scene.objects]
    return Case(Layout(640, 480, objects), colours, categories, sample.image(), sample.image(), index, index)


ROWS = {
    "frame": lambda case: case.frame,
    "painted": lambda case: painted(None, case, False),
    "rectangles": lambda case: paint(case, lambda _: "rectangle"),
    "ellipses": lambda case: paint(case, lambda _: "ellipse"),
    "empty_table": lambda case: empty_table(case.index, case.layout.width, case.layout.height),
}


def measure(split: str, seed: int, scenes: int) -> dict:
    truth, found = [], {name: [] for name in ROWS}
    for index in range(scenes):
        case = world_case(seed, index, split)
        truth.append([(c, o.box) for c, o in zip(case.categories, case.layout.objects)])
        for name, draw in ROWS.items():
            found[name].append([(f.category, f.box, f.score) for f in detect(draw(case))])
    return {
        name: {
            **layout_ap(truth, rows),
            "any_category_ap50": layout_ap(truth, rows, by_category=False)["ap50"],
            "detections": sum(map(len, rows)),
            "objects": sum(map(len, truth)),
        }  # fmt: skip
        for name, rows in found.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="heldout", choices=catalog.SPLITS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scenes", type=int, default=60)
    args = parser.parse_args()
    print(json.dumps(measure(args.split, args.seed, args.scenes), indent=1))


if __name__ == "__main__":
    main()
