"""`echogen eval`: every metric of a model on an `echogen world` export, as one dictionary.

- grounding (Ref-L4 protocol): Acc@0.5 / 0.75 / 0.9 and mAcc, overall and per expression type;
- layout-to-image fidelity: COCO AP / AP50 / AP75 of the classical detector on imagined scenes against the
  layouts they were imagined from;
- cycle consistency: mean IoU between the layouts and the layouts grounded back, and the failure rate
  (objects with IoU < 0.5).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from echogen_ros.evaluation.detector import detect
from echogen_ros.evaluation.layout_ap import layout_ap
from echogen_ros.model.layout import Layout, LayoutObject, box_iou
from echogen_ros.model.metrics import grounding_accuracy

FAILURE_IOU = 0.5


def _xyxy(bbox) -> tuple[float, float, float, float]:
    x, y, w, h = bbox
    return float(x), float(y), float(x + w), float(y + h)


def load_export(directory: Path) -> dict:
    path = Path(directory) / "annotations.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --data must be a directory written by `echogen world`")
    data = json.loads(path.read_text(encoding="utf-8"))
    missing = [k for k in ("images", "annotations", "categories", "refs") if k not in data]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    return data


def evaluate(
    model,
    directory: Path,
    limit: int = 0,
    imagine_limit: int = 0,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    data = load_export(directory)
    names = {c["id"]: c["name"] for c in data["categories"]}
    anns = defaultdict(list)
    for ann in data["annotations"]:
        anns[ann["image_id"]].append(ann)
    refs = defaultdict(list)
    for ref in data["refs"]:
        refs[ref["image_id"]].append(ref)
    captions = {c["image_id"]: c["caption"] for c in data.get("captions", [])}
    images = data["images"][:limit] if limit else data["images"]
    imagine_count = min(len(images), imagine_limit) if imagine_limit else len(images)
    by_type: dict[str, list[float]] = defaultdict(list)
    layouts, detections, cycle = [], [], []
    for step, info in enumerate(images):
        image = cv2.imread(str(Path(directory) / "images" / info["file_name"]), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read {info['file_name']} in {directory}/images")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        by_id = {a["id"]: a for a in anns[info["id"]]}
        sentences = [(r, s["sent"]) for r in refs[info["id"]] for s in r["sentences"]]
        if sentences:
            found = model.ground_many(image, [text for _, text in sentences])
            for (ref, _), det in zip(sentences, found):
                by_type[ref.get("type", "all")].append(box_iou(_xyxy(by_id[ref["ann_id"]]["bbox"]), det.box))
        if step < imagine_count and by_id:
            objects = [
                (f"{a.get('attributes', {}).get('colour', '')} {names[a['category_id']]}".strip(), _xyxy(a["bbox"]))
                for a in by_id.values()
            ]
            objects = objects[: model.max_objects]
            layout = Layout(
                info["width"],
                info["height"],
                tuple(LayoutObject(label, box) for label, box in objects),
                captions.get(info["id"], ""),
            )
            result = model.cycle(layout, seed=seed + info["id"])
            cycle += result.ious
            layouts.append(
                [(names[a["category_id"]], _xyxy(a["bbox"])) for a in list(by_id.values())[: model.max_objects]]
            )
            detections.append([(f.category, f.box, f.score) for f in detect(result.image)])
        if progress:
            progress(step + 1, len(images))
    overall = grounding_accuracy([v for values in by_type.values() for v in values])
    report = {"grounding": {**overall, "by_type": {k: grounding_accuracy(v) for k, v in sorted(by_type.items())}}}
    if layouts:
        report["layout_to_image"] = {**layout_ap(layouts, detections), "images": len(layouts)}
        report["cycle"] = {
            "mean_iou": float(np.mean(cycle)),
            "failure_rate": float(np.mean(np.array(cycle) < FAILURE_IOU)),
            "objects": len(cycle),
        }
    return report
