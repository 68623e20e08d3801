"""World samples by (seed, split, index), and their export as COCO instances + captions + RefCOCO refs.

Sample i of a split depends only on (seed, split, i): the first 10 scenes of a 1000-scene export are
the 10 scenes of a 10-scene export, and the same arguments write byte-identical files.

Refs with no referent (gRefCOCO's no-target expressions, `WorldSample.absent`) follow every ref with one,
marked `"no_target": true` with an empty `ann_id` list; readers ask `has_target(ref)`.

Where things are in space (world/camera.py) came later as extra fields, which a format-2 reader ignores: each
image's `camera` (K, camera_to_table, depth_scale), each annotation's `box3d` (table frame, metres) and the
depth images `depth/<file_name>` (16-bit millimetres).
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
from echogen_ros.world.camera import box3d, camera_record, depth_image, depth_units
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

    def depth(self, width: int = catalog.REF_WIDTH, height: int = catalog.REF_HEIGHT) -> np.ndarray:
        """(height, width) float32 metres, exact to `image(width, height)` (world/camera.py)."""
        return depth_image(self.scene, width, height)

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
    """Write `out/images/*.png`, `out/depth/*.png` (uint16 millimetres) and `out/annotations.json`; all or
    nothing (no partial directory).
    `overwrite` replaces only an earlier echogen output (see echogen_ros.outputs)."""
    with staged(Path(out), overwrite, kind="world export") as tmp:
        (tmp / "images").mkdir(parents=True)
        (tmp / "depth").mkdir()
        return _write(tmp, seed, count, split, width, height, config)


def _write(root: Path, seed: int, count: int, split: str, width: int, height: int, config: SceneConfig | None) -> dict:
    def png_writer(folder: str, convert: Callable[[np.ndarray], np.ndarray]) -> Callable[[str, np.ndarray], None]:
        def write(file_name: str, pixels: np.ndarray) -> None:
            ok, png = cv2.imencode(".png", convert(pixels))
            if not ok:
                raise RuntimeError(f"PNG encoding failed for {folder}/{file_name}")
            (root / folder / file_name).write_bytes(png.tobytes())

        return write

    bgr = png_writer("images", lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    depth = png_writer("depth", depth_units)
    data = coco(world_samples(seed, count, split, config), seed, split, width, height, bgr, depth)
    (root / "annotations.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return data


def coco(
    samples: Iterable[WorldSample],
    seed: int,
    split: str,
    width: int = catalog.REF_WIDTH,
    height: int = catalog.REF_HEIGHT,
    image: Callable[[str, np.ndarray], None] | None = None,
    depth: Callable[[str, np.ndarray], None] | None = None,
) -> dict:
    """What `annotations.json` holds for `samples` rendered at `width`×`height` (COCO images, annotations and
    categories, RefCOCO refs, captions, instructions, and where things are in space); `image(file_name, rgb)`
    is given each rendered image and `depth(file_name, metres)` each depth image (None: not rendered)."""
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
        if depth is not None:
            depth(file_name, sample.depth(width, height))
        data["images"].append({"id": image_id, "file_name": file_name, "width": width, "height": height,
                               "camera": camera_record(width, height)})  # fmt: skip
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
                "box3d": {k: v for k, v in box3d(obj).as_dict(digits=6).items() if k != "frame"},
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
