"""The experiments' one reader of `echogen world` exports: annotations.json (COCO images, annotations and
categories, RefCOCO refs; checked by echogen_ros.evaluation.run.load_export, what `echogen eval` reads) and the
frames in images/, as scenes in the export's order."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from echogen_ros.evaluation.run import load_export, object_label, xyxy
from echogen_ros.model.layout import Layout, LayoutObject
from echogen_ros.world.dataset import has_target

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ExportObject:
    id: int  # the annotation id, which refs point at
    category: str  # "cup"
    label: str  # what a layout calls it: "red cup"
    box: Box  # (x1, y1, x2, y2) in the frame's pixels


@dataclass(frozen=True)
class ExportScene:
    directory: Path
    file_name: str
    width: int
    height: int
    objects: tuple[ExportObject, ...]
    expressions: tuple[tuple[int, str], ...]  # (id of the object referred to, sentence) for every sentence of every ref
    absent: tuple[str, ...] = ()  # the sentences of refs with no referent (`no_target`), which name no object

    def image(self) -> np.ndarray:
        """The frame, RGB uint8."""
        image = cv2.imread(str(self.directory / "images" / self.file_name), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read {self.file_name} in {self.directory}/images")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def box(self, object_id: int) -> Box:
        """The box of the object with annotation id `object_id` (KeyError: not in this scene)."""
        return {o.id: o.box for o in self.objects}[object_id]

    def layout(self, max_objects: int) -> Layout:
        """The first `max_objects` objects as the layout an imagined scene of this one is asked for."""
        objects = tuple(LayoutObject(o.label, o.box) for o in self.objects[:max_objects])
        return Layout(self.width, self.height, objects)


def read_scenes(directory: Path, limit: int = 0) -> list[ExportScene]:
    """The export's first `limit` scenes (0: all); ValueError or FileNotFoundError when it is not an export."""
    directory = Path(directory)
    data = load_export(directory)
    try:
        return _scenes(directory, data, limit)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{directory}/annotations.json is not an `echogen world` export ({exc!r})") from None


def _scenes(directory: Path, data: dict, limit: int) -> list[ExportScene]:
    names = {c["id"]: c["name"] for c in data["categories"]}
    objects, expressions, absent = defaultdict(list), defaultdict(list), defaultdict(list)
    for a in data["annotations"]:
        objects[a["image_id"]].append(
            ExportObject(a["id"], names[a["category_id"]], object_label(a, names), xyxy(a["bbox"]))
        )
    for ref in data["refs"]:
        if has_target(ref):
            expressions[ref["image_id"]] += [(ref["ann_id"], s["sent"]) for s in ref["sentences"]]
        else:
            absent[ref["image_id"]] += [s["sent"] for s in ref["sentences"]]
    images = data["images"][:limit] if limit else data["images"]
    return [
        ExportScene(directory, info["file_name"], int(info["width"]), int(info["height"]),
                    tuple(objects[info["id"]]), tuple(expressions[info["id"]]), tuple(absent[info["id"]]))
        for info in images
    ]  # fmt: skip
