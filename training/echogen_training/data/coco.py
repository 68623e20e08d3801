"""Real datasets in their real formats: COCO instances + captions, RefCOCO / RefCOCO+ / RefCOCOg refs.

- COCO: `instances_*.json` (images, annotations with bbox [x, y, w, h], categories) and
  `captions_*.json`; an `echogen world` export is the same format in one `annotations.json`.
- RefCOCO family: `refs(unc).p` / `refs(umd).p` / `refs(google).p` (a pickle of plain lists and dicts,
  read with an unpickler that refuses every class) or the same refs as JSON, plus `instances.json`.
  Refs with no referent (gRefCOCO's `no_target`, which `echogen world` writes too) have no box to learn
  from and are skipped.
"""

from __future__ import annotations

import json
import pickle
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from echogen_ros.model.layout import validate_box
from echogen_ros.world.dataset import has_target
from echogen_training.data.records import Record


class _PlainDataUnpickler(pickle.Unpickler):
    """RefCOCO refs are lists of dicts of str/int; anything that names a class is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: refs files hold plain data only")


def read_refs(path: Path) -> list[dict]:
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    with path.open("rb") as f:
        return _PlainDataUnpickler(f).load()


def _image_loader(path: Path):
    def load() -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read image {path}")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    return load


def _xyxy(bbox: list[float]) -> tuple[float, float, float, float]:
    x, y, w, h = bbox
    return float(x), float(y), float(x + w), float(y + h)


def load_coco(
    annotation_files: list[Path],
    image_dir: Path,
    refs_file: Path | None = None,
    split: str | None = None,
) -> list[Record]:
    """Records from COCO-format files (instances, captions and, if present, refs), one per image.

    `refs_file` adds RefCOCO refs (only those of `split`, when given). Boxes that fall outside their
    image or are degenerate are dropped (COCO has a few); images without objects or refs are skipped.
    """
    images, anns, cats, captions, refs = {}, {}, {}, defaultdict(list), []
    for path in annotation_files:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        images.update({im["id"]: im for im in data.get("images", [])})
        anns.update({a["id"]: a for a in data.get("annotations", []) if "bbox" in a})
        cats.update({c["id"]: c["name"] for c in data.get("categories", [])})
        for c in data.get("captions", []):
            captions[c["image_id"]].append(c["caption"])
        for a in data.get("annotations", []):
            if "caption" in a:  # COCO captions_*.json keep captions under "annotations"
                captions[a["image_id"]].append(a["caption"])
        refs += data.get("refs", [])
    if refs_file is not None:
        refs += read_refs(refs_file)
    by_image = defaultdict(list)
    for ann in anns.values():
        by_image[ann["image_id"]].append(ann)
    refs_by_image = defaultdict(list)
    for ref in refs:
        if has_target(ref) and (split is None or ref.get("split") == split):
            refs_by_image[ref["image_id"]].append(ref)

    records = []
    for image_id, info in sorted(images.items()):
        w, h = int(info["width"]), int(info["height"])
        objects = [(_label(a, cats), _xyxy(a["bbox"])) for a in by_image[image_id] if not a.get("iscrowd", 0)]
        objects = [(label, box) for label, box in objects if _valid(box, w, h)]
        expressions = [
            (s["sent"], _xyxy(anns[r["ann_id"]]["bbox"]))
            for r in refs_by_image[image_id]
            if r["ann_id"] in anns
            for s in r["sentences"]
        ]
        expressions = [(text, box) for text, box in expressions if _valid(box, w, h)]
        if not objects and not expressions:
            continue
        caption = captions[image_id][0] if captions[image_id] else ""
        records.append(Record(_image_loader(image_dir / info["file_name"]), w, h, caption, objects, expressions))
    return records


def _label(ann: dict, cats: dict[int, str]) -> str:
    colour = ann.get("attributes", {}).get("colour")
    name = cats.get(ann["category_id"], "object")
    return f"{colour} {name}" if colour else name


def _valid(box, width: int, height: int) -> bool:
    try:
        validate_box(box, width, height)
    except ValueError:
        return False
    return True
