"""How well a model lists scenes (`EchoGen.parse_scene`), against the world's truth: COCO AP (0.5:0.95), AP50
and AP75 of the listed objects with a label ("red cup") as the class, so a wrong colour is a false positive;
AP50 whatever the label (is there an object where one is listed); and at the threshold, precision, recall and
the share of scenes listed exactly (every object right, none extra). A listed object is right when it overlaps
a true object of its label, not matched yet, at IoU ≥ 0.5, higher scores matched first (`matches`, as COCO
matches): what a calibrated inventory score is the probability of.

Controls on the same scenes, scored the same way:
- another scene's inventory (scene i+1's listing against scene i's truth): what where objects usually stand
  and which labels are common give, without reading this frame;
- the true labels grounded (`ground_layout` of the scene's own layout, each box scored by its box tokens): the
  expression grounder told every label, a reference for the boxes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from echogen_ros.evaluation.calibration import auroc, ece
from echogen_ros.evaluation.layout_ap import layout_ap
from echogen_ros.evaluation.run import object_label, xyxy
from echogen_ros.model.inventory import InventoryCalibration, ObjectSignals
from echogen_ros.model.layout import Layout, LayoutObject, box_iou, rescale_box
from echogen_ros.model.listing import DEFAULT_LISTING
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.scene import SceneConfig

RIGHT_IOU = 0.5
Listing = list[tuple[str, tuple[float, float, float, float], float]]  # (label, box in pixels, score) per object


def matches(truth: Sequence[tuple[str, Sequence[float]]], listed: Listing, iou: float = RIGHT_IOU) -> list[bool]:
    """For each listed object, whether it is right: the true object of its label it overlaps most, among those
    no better-scored listed object took, at IoU ≥ `iou` (each true object is matched once)."""
    taken: set[int] = set()
    right = [False] * len(listed)
    for i in sorted(range(len(listed)), key=lambda k: -listed[k][2]):
        label, box, _ = listed[i]
        overlaps = [(box_iou(box, tb), j) for j, (tl, tb) in enumerate(truth) if tl == label and j not in taken]
        best = max(overlaps, default=(0.0, -1))
        if best[0] >= iou:
            taken.add(best[1])
            right[i] = True
    return right


@dataclass(frozen=True)
class Row:
    signals: ObjectSignals  # of one listed object
    right: bool  # `matches`


@torch.inference_mode()
def collect(
    model, split: str, scenes: int, seed: int = 0, config: SceneConfig | Callable[[int], SceneConfig] | None = None
) -> list[Row]:
    """A row for every object `model` lists in one pass (`parse_scene`'s "sequence") in scenes 0..scenes-1 of
    `split` (drawn with `config`, or `config(index)` per scene): what an inventory calibration is fitted on and
    scored by."""
    rows = []
    for index in range(scenes):
        sample = world_sample(seed, index, split, config(index) if callable(config) else config)
        listing = model.parse_scene(sample.image(), method="sequence")
        found = [(d.label, d.box, d.score) for d in listing.objects]
        truth = list(zip(sample.labels(), sample.boxes()))
        rows += [Row(signals, right) for signals, right in zip(listing.signals, matches(truth, found))]
    return rows


def calibration_report(rows: list[Row], calibration: InventoryCalibration | None) -> dict:
    """ECE and AUROC of the probability (`calibration`'s, or the raw score) that a listed object is right."""
    p = [calibration.probability(r.signals) if calibration is not None else r.signals.score for r in rows]
    right = [r.right for r in rows]
    return {"listed": len(rows), "right": float(np.mean(right)) if rows else 0.0, "ece": ece(p, right),
            "auroc": auroc(p, right), "calibrated": calibration is not None}  # fmt: skip


def measure(
    model,
    data: dict,
    image: Callable[[dict], np.ndarray],
    limit: int = 0,
    threshold: float = 0.5,
    progress: Callable[[int, int], None] | None = None,
    method: str = DEFAULT_LISTING,
) -> dict:
    """The inventory of `model` listed by `method` (`listing.LISTING_METHODS`) on world data
    (`world.dataset.coco`'s content, frames from `image(info)`), the first `limit` scenes (0: all), and the
    controls (module doc)."""
    names = {c["id"]: c["name"] for c in data["categories"]}
    images = data["images"][:limit] if limit else data["images"]
    truths, listings, grounded, sizes, latency = [], [], [], [], []
    calibrated = False
    for step, info in enumerate(images):
        frame = image(info)
        truth = [(object_label(a, names), xyxy(a["bbox"])) for a in data["annotations"] if a["image_id"] == info["id"]]
        start = time.perf_counter()
        inventory = model.parse_scene(frame, method=method)
        latency.append((time.perf_counter() - start) * 1000)
        listings.append([(d.label, d.box, d.score) for d in inventory.objects])
        calibrated = inventory.calibrated
        layout = Layout(info["width"], info["height"], tuple(LayoutObject(label, box) for label, box in truth))
        found = model.ground_layout(frame, layout) if truth else []
        grounded.append([(label, d.box, d.score) for (label, _), d in zip(truth, found)])
        truths.append(truth)
        sizes.append((info["width"], info["height"]))
        if progress:
            progress(step + 1, len(images))
    # scene i + 1's listing in scene i's frame size
    shifted = [_resized(listings[(i + 1) % len(listings)], sizes[(i + 1) % len(sizes)], sizes[i])
               for i in range(len(listings))]  # fmt: skip
    return {
        "inventory": {
            **scores(truths, listings, threshold),
            "method": method,
            "calibrated": calibrated,
            "latency_ms_p50": float(np.median(latency)) if latency else 0.0,
        },
        "controls": {
            "another_scene": scores(truths, shifted, threshold),
            "grounded_true_labels": scores(truths, grounded, threshold),
        },  # fmt: skip
    }


def scores(truths: list, listings: list[Listing], threshold: float) -> dict:
    """AP figures of `listings` against `truths` (per scene); ECE and AUROC of every listed object's score as
    the probability that it is right (`matches`); precision, recall and exact scenes at `threshold`."""
    labels = sorted({label for scene in (*truths, *listings) for label, *_ in scene})
    classes = {label: k for k, label in enumerate(labels, start=1)}
    ap = layout_ap(truths, listings, classes=classes)
    anywhere = layout_ap(truths, listings, by_category=False, classes=classes)
    right, kept, exact = 0, 0, 0
    for truth, listed in zip(truths, listings):
        sure = [item for item in listed if item[2] >= threshold]
        hits = sum(matches(truth, sure))
        right, kept, exact = right + hits, kept + len(sure), exact + (hits == len(sure) == len(truth))
    objects = sum(len(t) for t in truths)
    judged = [(item[2], right_one) for truth, listed in zip(truths, listings)
              for item, right_one in zip(listed, matches(truth, listed))]  # fmt: skip
    p, right_or_not = [s for s, _ in judged], [r for _, r in judged]
    return {
        **ap,
        "any_label_ap50": anywhere["ap50"],
        "ece": ece(p, right_or_not) if judged else 0.0,  # of every listed object's score: is it right?
        "auroc": _number(auroc(p, right_or_not)),  # None where every listed object is right, or none is
        "threshold": threshold,
        "precision": right / kept if kept else 0.0,
        "recall": right / objects if objects else 0.0,
        "scenes_exact": exact / len(truths) if truths else 0.0,
        "images": len(truths),
        "objects": objects,
        "listed": sum(len(listed) for listed in listings),
    }


def _number(value: float) -> float | None:
    return None if np.isnan(value) else value


def _resized(listing: Listing, size: tuple[int, int], to: tuple[int, int]) -> Listing:
    sx, sy = to[0] / size[0], to[1] / size[1]
    return [(label, rescale_box(box, sx, sy), score) for label, box, score in listing]
