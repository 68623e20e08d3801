"""Layouts (labelled boxes in an image frame) and detections: the model's inputs and outputs."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from echogen_ros import limits

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float  # 0..1, from the box tokens' probabilities
    label: str

    def to_json(self) -> dict:
        return {"box": [round(v, 2) for v in self.box], "score": round(self.score, 4), "label": self.label}


@dataclass(frozen=True)
class LayoutObject:
    label: str
    box: Box


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    objects: tuple[LayoutObject, ...]
    caption: str = ""
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def validate(self, max_objects: int | None = None) -> Layout:
        """Raise ValueError naming the first problem: size, label, box outside/degenerate/non-finite."""
        if not (isinstance(self.width, int) and isinstance(self.height, int)) or self.width < 2 or self.height < 2:
            raise ValueError(f"layout size must be integers >= 2, got {self.width}x{self.height}")
        most = limits.active().max_layout_side
        if max(self.width, self.height) > most:
            raise ValueError(f"layout size {self.width}x{self.height} is over {most} a side "
                             f"({limits.how_to_raise('max_layout_side')})")  # fmt: skip
        if not self.objects:
            raise ValueError("layout has no objects")
        if max_objects is not None and len(self.objects) > max_objects:
            raise ValueError(f"layout has {len(self.objects)} objects; this model supports at most {max_objects}")
        for i, obj in enumerate(self.objects):
            if not obj.label.strip():
                raise ValueError(f"object {i} has an empty label")
            validate_box(obj.box, self.width, self.height, f"object {i} ({obj.label!r})")
        return self

    @classmethod
    def from_json(cls, data: dict) -> Layout:
        """Parse `{"caption", "width", "height", "objects": [{"label", "box": [x1, y1, x2, y2]}]}`."""
        if not isinstance(data, dict):
            raise ValueError("layout JSON must be an object")
        missing = [k for k in ("width", "height", "objects") if k not in data]
        if missing:
            raise ValueError(f"layout JSON lacks {', '.join(missing)}")
        if not isinstance(data["objects"], list):
            raise ValueError("layout 'objects' must be a list")
        objects = []
        for i, obj in enumerate(data["objects"]):
            if not isinstance(obj, dict) or "label" not in obj or "box" not in obj:
                raise ValueError(f"object {i} needs 'label' and 'box'")
            box = obj["box"]
            if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box):
                raise ValueError(f"object {i}: box must be four numbers [x1, y1, x2, y2]")
            objects.append(LayoutObject(str(obj["label"]), tuple(float(v) for v in box)))
        return cls(data["width"], data["height"], tuple(objects), str(data.get("caption", "")))

    def imagined_size(self) -> tuple[int, int]:
        """(width, height) of the image imagined for this layout: its own size, or the same shape with the
        longer side `max_imagined_side` (echogen_ros.limits) where it is larger."""
        scale = min(1.0, limits.active().max_imagined_side / max(self.width, self.height))
        return max(1, round(self.width * scale)), max(1, round(self.height * scale))

    def resized(self, width: int, height: int) -> Layout:
        """The same layout on a `width`×`height` canvas (every box scaled with it)."""
        sx, sy = width / self.width, height / self.height
        objects = tuple(LayoutObject(o.label, rescale_box(o.box, sx, sy)) for o in self.objects)
        return Layout(width, height, objects, self.caption, self.extra)

    def to_json(self) -> dict:
        return {
            "caption": self.caption,
            "width": self.width,
            "height": self.height,
            "objects": [{"label": o.label, "box": [round(v, 2) for v in o.box]} for o in self.objects],
        }


def rescale_box(box: Sequence[float], sx: float, sy: float) -> Box:
    return box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy


def validate_box(box: Sequence[float], width: int, height: int, what: str = "box") -> None:
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise ValueError(f"{what}: box must be four finite numbers, got {list(box)}")
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"{what}: degenerate box {list(box)} (need x2 > x1 and y2 > y1)")
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise ValueError(f"{what}: box {list(box)} is outside the {width}x{height} image")


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


DISTINCT_IOU = 0.5  # two boxes overlapping less than this are two objects (as in COCO matching and NMS)
EXACT_MATCH = 12  # assign_boxes is exact up to this many found boxes (2^12 states), greedy beyond


def label_groups(labels: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """The positions of each label, labels in first-seen order: {"red cup": [0, 2], "plate": [1]}."""
    groups: dict[Hashable, list[int]] = {}
    for position, label in enumerate(labels):
        groups.setdefault(label, []).append(position)
    return groups


def distinct(detections: Sequence[Detection], iou: float = DISTINCT_IOU) -> list[Detection]:
    """`detections` (best first) without those overlapping a better one at IoU ≥ `iou`."""
    kept: list[Detection] = []
    for detection in detections:
        if all(box_iou(detection.box, other.box) < iou for other in kept):
            kept.append(detection)
    return kept


def assign_boxes(targets: Sequence[Sequence[float]], found: Sequence[Sequence[float]]) -> list[int | None]:
    """For each target box, the index of the found box matched to it, one to one, min(targets, found) pairs
    (None for the targets left over when fewer boxes were found): the matching of largest total IoU. Exact up
    to EXACT_MATCH found boxes (a label names a few objects), greedy by IoU beyond."""
    iou = [[box_iou(t, f) for f in found] for t in targets]
    if len(found) > EXACT_MATCH:
        return _greedy_match(iou)
    spare = len(targets) - min(len(targets), len(found))  # targets that must stay unmatched
    # states after each target: mask of found boxes used → (total IoU, the matches so far)
    states: dict[int, tuple[float, tuple[int | None, ...]]] = {0: (0.0, ())}
    for row in iou:
        following: dict[int, tuple[float, tuple[int | None, ...]]] = {}
        for mask, (total, match) in states.items():
            options = [(mask | 1 << j, total + row[j], j) for j in range(len(found)) if not mask >> j & 1]
            if len(match) - bin(mask).count("1") < spare:
                options.append((mask, total, None))
            for key, value, j in options:
                if key not in following or value > following[key][0]:
                    following[key] = (value, (*match, j))
        states = following
    return list(max(states.values(), key=lambda state: state[0])[1])


def _greedy_match(iou: list[list[float]]) -> list[int | None]:
    match: list[int | None] = [None] * len(iou)
    used: set[int] = set()
    pairs = sorted(((v, t, j) for t, row in enumerate(iou) for j, v in enumerate(row)), key=lambda p: -p[0])
    for _, t, j in pairs:
        if match[t] is None and j not in used:
            match[t] = j
            used.add(j)
    return match
