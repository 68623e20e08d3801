"""COCO box AP of detections against layouts, computed with pycocotools."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence

from echogen_ros.world import catalog

Box = Sequence[float]


def layout_ap(
    layouts: Sequence[Sequence[tuple[str, Box]]],
    detections: Sequence[Sequence[tuple[str, Box, float]]],
    by_category: bool = True,
    classes: Mapping[str, int] | None = None,
) -> dict[str, float]:
    """AP (0.5:0.95), AP50, AP75 of per-image detections (category, box, score) against per-image
    layouts (category, box); boxes are (x1, y1, x2, y2) pixels. `by_category=False` matches a detection
    to a layout box whatever either's category (COCO's `useCats = 0`): whether an object stands where the
    layout puts one, not whether it is of the right kind. `classes`: the id of every category name (default:
    the world's categories; the inventory's are whole labels, "red cup")."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ids = catalog.CATEGORY_IDS if classes is None else classes
    categories = [{"id": cid, "name": name} for name, cid in ids.items()]
    images, annotations, results = [], [], []
    for image_id, (layout, found) in enumerate(zip(layouts, detections), start=1):
        images.append({"id": image_id, "width": 1, "height": 1})
        for category, (x1, y1, x2, y2) in layout:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": ids[category],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
        for category, (x1, y1, x2, y2), score in found:
            results.append(
                {
                    "image_id": image_id,
                    "category_id": ids[category],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    if not annotations:
        raise ValueError("no layout objects to evaluate")
    if not results:
        return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {"images": images, "annotations": annotations, "categories": categories}
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.params.useCats = int(by_category)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    ap, ap50, ap75 = (max(float(v), 0.0) for v in evaluation.stats[:3])
    return {"ap": ap, "ap50": ap50, "ap75": ap75}
