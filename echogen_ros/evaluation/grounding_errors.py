"""What a grounding answer hit: the referred object, another object, the referred object with a loose box,
or no object; and whether the referred object is a composition held out of training (a blue cup).

Accuracy alone says how often grounding fails; these say why: picking another object is a reading error
(the wrong cup of two, a category not recognised in a new colour), a loose box is a localisation error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from echogen_ros.model.layout import box_iou
from echogen_ros.world import catalog

OUTCOMES: tuple[str, ...] = ("correct", "another_object", "loose", "elsewhere")
HIT_IOU = 0.5


def outcome(box: Sequence[float], target: int, objects: Mapping[int, Sequence[float]]) -> str:
    """Where `box` landed among the scene's `objects` (id → xyxy box), `target` being the referred one:
    correct (IoU ≥ 0.5 with it), another_object (IoU ≥ 0.5 with another), loose (the referred object
    overlaps it most, below 0.5), elsewhere (none of these)."""
    if target not in objects:
        raise ValueError(f"the referred object {target} is not among the scene's objects {sorted(objects)}")
    ious = {key: box_iou(tuple(other), tuple(box)) for key, other in objects.items()}
    if ious[target] >= HIT_IOU:
        return "correct"
    best = max(ious, key=lambda key: (ious[key], key == target))
    if best != target and ious[best] >= HIT_IOU:
        return "another_object"
    return "loose" if best == target and ious[target] > 0 else "elsewhere"


def outcome_rates(outcomes: Sequence[str]) -> dict[str, float]:
    """The share of each outcome (every one of OUTCOMES, zeros included)."""
    counts = Counter(outcomes)
    unknown = set(counts) - set(OUTCOMES)
    if unknown:
        raise ValueError(f"unknown grounding outcomes {sorted(unknown)}")
    return {name: counts[name] / len(outcomes) if outcomes else 0.0 for name in OUTCOMES}


def composition(annotation: Mapping, category: str) -> str:
    """The composition of an object: "heldout_pair" where its colour × category is held out of the train
    split, else "seen_pair"."""
    colour = annotation.get("attributes", {}).get("colour", "")
    return "heldout_pair" if catalog.is_heldout_pair(colour, category) else "seen_pair"
