"""World samples by (seed, split, index), and their export as COCO instances + captions + RefCOCO refs.

Sample i of a split depends only on (seed, split, i): the first 10 scenes of a 1000-scene export are
the 10 scenes of a 10-scene export, and the same arguments write byte-identical files.
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
    caption,
    instructions,
    referring_expressions,
)
from echogen_ros.world.render import pixel_box, render
from echogen_ros.world.scene import Scene, SceneConfig, sample_scene

FORMAT_VERSION = 1


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
    image: Callable[[str, np.ndarray], None] = lambda file_name, rgb: None,
) -> dict:
    """What `annotations.json` holds for `samples` rendered at `width`×`height` (COCO images, annotations and
    categories, RefCOCO refs, captions, instructions); `image(file_name, rgb)` is given each rendered image."""
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
    for sample in samples:
        image_id = sample.index + 1
        file_name = f"{image_id:06d}.png"
        image(file_name, sample.image(width, height))
        data["images"].append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        data["captions"].append({"id": image_id, "image_id": image_id, "caption": sample.caption})
        ann_ids = _add_annotations(data, sample, image_id, width, height)
        _add_refs(data, sample, image_id, file_name, ann_ids, split)
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


def _add_refs(data: dict, sample: WorldSample, image_id: int, file_name: str, ann_ids: list[int], split: str) -> None:
    for expr in sample.expressions:
        ref_id = len(data["refs"]) + 1
        data["refs"].append(
            {
                "ref_id": ref_id,
                "image_id": image_id,
                "ann_id": ann_ids[expr.target],
                "category_id": catalog.CATEGORY_IDS[sample.scene.objects[expr.target].category],
                "file_name": file_name,
                "split": split,
                "sentences": [{"sent": expr.text, "raw": expr.text, "tokens": expr.text.split(), "sent_id": ref_id}],
                "sent_ids": [ref_id],
                "type": expr.kind,
                "relation": expr.relation,
                "anchor_ann_ids": [ann_ids[j] for j in expr.anchors],
            }
        )
