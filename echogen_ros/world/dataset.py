"""World samples by (seed, split, index), and their export as COCO instances + captions + RefCOCO refs.

Sample i of a split depends only on (seed, split, i): the first 10 scenes of a 1000-scene export are
the 10 scenes of a 10-scene export, and the same arguments write byte-identical files.

Refs with no referent (gRefCOCO's no-target expressions, `WorldSample.absent`) follow every ref with one,
marked `"no_target": true` with an empty `ann_id` list; readers ask `has_target(ref)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from echogen_ros.outputs import staged
from echogen_ros.world import catalog
from echogen_ros.world.language import (
    Expression,
    Instruction,
    absent_expressions,
    asked_category,
    caption,
    instructions,
    referring_expressions,
)
from echogen_ros.world.render import pixel_box, render
from echogen_ros.world.scene import Scene, SceneConfig, sample_scene

# 2: refs with no referent (no_target true, ann_id []) follow the others; every ref says no_target
FORMAT_VERSION = 2


def has_target(ref: dict) -> bool:
    """Whether an exported ref names an object (`ann_id` an annotation id); exports of format 1 hold only such."""
    return not ref.get("no_target", False)


@dataclass(frozen=True)
class WorldSample:
    index: int
    scene: Scene
    caption: str
    expressions: list[Expression]
    instructions: list[Instruction]
    absent: list[Expression]  # expressions no object of the scene satisfies (target None)

    def image(self, width: int = catalog.REF_WIDTH, height: int = catalog.REF_HEIGHT) -> np.ndarray:
        return render(self.scene, width, height)

    def boxes(
        self, width: int = catalog.REF_WIDTH, height: int = catalog.REF_HEIGHT
    ) -> list[tuple[int, int, int, int]]:
        return [pixel_box(o, width, height) for o in self.scene.objects]

    def labels(self) -> list[str]:
        return [o.label for o in self.scene.objects]


def world_sample(seed: int, index: int, split: str = "train", config: SceneConfig | None = None) -> WorldSample:
    """The index-th scene of `split` for `seed`, with its texts."""
    if split not in catalog.SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(catalog.SPLITS)}")
    heldout = split == "heldout"
    config = config or SceneConfig()
    if config.heldout != heldout:
        config = replace(config, heldout=heldout)
    rng = np.random.default_rng([seed, catalog.SPLITS.index(split), index])
    scene = sample_scene(rng, config)
    expressions = referring_expressions(scene, rng, heldout)
    orders = instructions(scene, rng, heldout)
    # drawn last, so that every scene, expression and instruction is what it was before they existed
    absent = absent_expressions(scene, rng, heldout)
    return WorldSample(index, scene, caption(scene), expressions, orders, absent)


def world_samples(
    seed: int, count: int, split: str = "train", config: SceneConfig | None = None
) -> Iterator[WorldSample]:
    for index in range(count):
        yield world_sample(seed, index, split, config)


def export(
    out: Path,
    seed: int,
    count: int,
    split: str = "train",
    width: int = catalog.REF_WIDTH,
    height: int = catalog.REF_HEIGHT,
    config: SceneConfig | None = None,
    overwrite: bool = False,
) -> dict:
    """Write `out/images/*.png` and `out/annotations.json`; all or nothing (no partial directory).
    `overwrite` replaces only an earlier echogen output (see echogen_ros.outputs)."""
    with staged(Path(out), overwrite, kind="world export") as tmp:
        (tmp / "images").mkdir(parents=True)
        return _write(tmp, seed, count, split, width, height, config)


def _write(root: Path, seed: int, count: int, split: str, width: int, height: int, config: SceneConfig | None) -> dict:
    def write_png(file_name: str, rgb: np.ndarray) -> None:
        ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"PNG encoding failed for {file_name}")
        (root / "images" / file_name).write_bytes(png.tobytes())

    data = coco(world_samples(seed, count, split, config), seed, split, width, height, write_png)
    (root / "annotations.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return data


def coco(
    samples: Iterable[WorldSample],
    seed: int,
    split: str,
    width: int = catalog.REF_WIDTH,
    height: int = catalog.REF_HEIGHT,
    image: Callable[[str, np.ndarray], None] | None = None,
) -> dict:
    """What `annotations.json` holds for `samples` rendered at `width`×`height` (COCO images, annotations and
    categories, RefCOCO refs, captions, instructions); `image(file_name, rgb)` is given each rendered image
    (None: nothing is rendered)."""
    data: dict = {
        "info": {"description": "echogen_ros tabletop world", "version": FORMAT_VERSION, "seed": seed, "split": split},
        "images": [],
        "annotations": [],
        "categories": [
            {"id": cid, "name": name, "supercategory": "tabletop"} for name, cid in catalog.CATEGORY_IDS.items()
        ],
        "captions": [],
        "refs": [],
        "instructions": [],
    }
    no_target = []  # after every ref with a referent, so that those keep their ids
    for sample in samples:
        image_id = sample.index + 1
        file_name = f"{image_id:06d}.png"
        if image is not None:
            image(file_name, sample.image(width, height))
        data["images"].append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        data["captions"].append({"id": image_id, "image_id": image_id, "caption": sample.caption})
        ann_ids = _add_annotations(data, sample, image_id, width, height)
        place = {"image_id": image_id, "file_name": file_name, "split": split}
        data["refs"] += [_ref(expr, sample, ann_ids, place) for expr in sample.expressions]
        no_target += [_ref(expr, sample, ann_ids, place) for expr in sample.absent]
        for ins in sample.instructions:
            data["instructions"].append(
                {
                    "id": len(data["instructions"]) + 1,
                    "image_id": image_id,
                    "instruction": ins.text,
                    "action": ins.action,
                    "target_ann_id": ann_ids[ins.target],
                    "relation": ins.relation,
                    "anchor_ann_ids": [ann_ids[j] for j in ins.anchors],
                }
            )
    data["refs"] += no_target
    for ref_id, ref in enumerate(data["refs"], start=1):
        ref["ref_id"] = ref["sent_ids"][0] = ref["sentences"][0]["sent_id"] = ref_id
    return data


def _add_annotations(data: dict, sample: WorldSample, image_id: int, width: int, height: int) -> list[int]:
    ann_ids = []
    for obj, (x1, y1, x2, y2) in zip(sample.scene.objects, sample.boxes(width, height)):
        ann_id = len(data["annotations"]) + 1
        ann_ids.append(ann_id)
        data["annotations"].append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": catalog.CATEGORY_IDS[obj.category],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
                "attributes": {"colour": obj.colour, "size": obj.size},
            }
        )
    return ann_ids


def _ref(expr: Expression, sample: WorldSample, ann_ids: list[int], place: dict) -> dict:
    """One RefCOCO ref (its ids numbered by `coco`); with no referent, `ann_id` is [] and `category_id` the
    category the expression asks for ("the blue cup" → cup)."""
    absent = expr.target is None
    category = asked_category(expr.text) if absent else sample.scene.objects[expr.target].category
    return {
        "ref_id": 0,
        "image_id": place["image_id"],
        "ann_id": [] if absent else ann_ids[expr.target],
        "category_id": catalog.CATEGORY_IDS[category],
        "file_name": place["file_name"],
        "split": place["split"],
        "sentences": [{"sent": expr.text, "raw": expr.text, "tokens": expr.text.split(), "sent_id": 0}],
        "sent_ids": [0],
        "type": expr.kind,
        "relation": expr.relation,
        "anchor_ann_ids": [ann_ids[j] for j in expr.anchors],
        "no_target": absent,
    }
