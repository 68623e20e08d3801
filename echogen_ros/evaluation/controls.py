"""The imagined-scene measures, for the generator and for the controls that say what they are worth.

Each row is one way of drawing a picture of a scene's layout; every picture is graded the same way: the
classical detector's boxes against the layout (layout AP) and the model's cycle check (each object grounded
back, IoU with its goal box). A figure means something only above the controls':

- `imagined`: the generator's tokens for the layout (what `EchoGen.imagine` draws);
- `ceiling`: the real frame's own codes (the tokenizer's best: a perfect generator could score this);
- `empty_table`: the codes of a table with nothing on it (a generator that draws nothing);
- `other_scene`: the codes of the next scene's frame (a generator that draws a wrong scene);
- `painted`: flat shapes in each object's colour painted into the layout's boxes on an empty table, no model
  at all (ellipses for round kinds, rectangles for the rest): what box placement alone gets from the graders.

All the model's rows are drawn by Janus' decoder from the codes alone; with `decoder_map` the layout-reading
decoder draws them, reading the layout (its figures are the map's, not the generator's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from echogen_ros.evaluation.cycle_check import scene_recall
from echogen_ros.evaluation.detector import detect
from echogen_ros.model.layout import Layout, rescale_box
from echogen_ros.world import catalog
from echogen_ros.world.render import empty_table

ROUND = {"ball", "bowl", "plate", "cup", "banana"}  # painted as ellipses; the other kinds as rectangles


@dataclass(frozen=True)
class Case:
    """One scene to draw: its layout (labels "colour category"), each object's colour and category, its
    frame, the next scene's frame, a seed and the scene's index (which empty table it gets)."""

    layout: Layout
    colours: list[str]
    categories: list[str]
    frame: np.ndarray
    other: np.ndarray
    seed: int
    index: int


def imagined(model, case: Case, decoder_map: bool) -> np.ndarray:
    return model.imagine(case.layout, seed=case.seed, decoder_map=decoder_map)


def ceiling(model, case: Case, decoder_map: bool) -> np.ndarray:
    return model.draw(model.image_codes(case.frame), case.layout, decoder_map)


def empty(model, case: Case, decoder_map: bool) -> np.ndarray:
    table = empty_table(case.index, case.layout.width, case.layout.height)
    return model.draw(model.image_codes(table), case.layout, decoder_map)


def other_scene(model, case: Case, decoder_map: bool) -> np.ndarray:
    return model.draw(model.image_codes(case.other), case.layout, decoder_map)


def painted(model, case: Case, decoder_map: bool) -> np.ndarray:
    return paint(case, lambda category: "ellipse" if category in ROUND else "rectangle")


def paint(case: Case, shape_of: Callable[[str], str]) -> np.ndarray:
    """Each object of `case` painted flat in its colour into its box on an empty table, as the shape
    ("ellipse" or "rectangle") `shape_of(category)` names."""
    image = empty_table(case.index, case.layout.width, case.layout.height).copy()
    for obj, colour, category in zip(case.layout.objects, case.colours, case.categories):
        x1, y1, x2, y2 = (int(round(v)) for v in obj.box)
        rgb = catalog.COLOURS.get(colour, catalog.COLOURS["white"])
        if shape_of(category) == "ellipse":
            centre, axes = ((x1 + x2) // 2, (y1 + y2) // 2), (max(1, (x2 - x1) // 2), max(1, (y2 - y1) // 2))
            cv2.ellipse(image, centre, axes, 0, 0, 360, rgb, thickness=-1)
        else:
            cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), rgb, thickness=-1)
    return image


ROWS: dict[str, Callable[[object, Case, bool], np.ndarray]] = {
    "imagined": imagined, "ceiling": ceiling, "empty_table": empty, "other_scene": other_scene, "painted": painted,
}  # fmt: skip


@dataclass
class Graded:
    """One row's grades over the scenes so far."""

    layouts: list[list[tuple[str, tuple]]]
    detections: list[list[tuple[str, tuple, float]]]
    ious: list[float]
    scenes: list[tuple[float, float]]  # per scene: (cycle mean IoU, detector recall)


def grade(model, picture: np.ndarray, case: Case, graded: Graded) -> object:
    """Add the detector's and the cycle check's grades of `picture` (drawn for `case`) to `graded`; returns
    the cycle check's result."""
    result = model.check_cycle(picture, case.layout)
    sx, sy = case.layout.width / picture.shape[1], case.layout.height / picture.shape[0]
    found = [(f.category, rescale_box(f.box, sx, sy), f.score) for f in detect(picture)]
    truth = [(c, o.box) for c, o in zip(case.categories, case.layout.objects)]
    graded.layouts.append(truth)
    graded.detections.append(found)
    graded.ious += result.ious
    graded.scenes.append((result.mean_iou, scene_recall(truth, found)))
    return result
