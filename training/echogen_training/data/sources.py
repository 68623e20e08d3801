"""Build the record stream a config asks for, and layouts for Cycle RL (which needs no images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from echogen_ros.world import catalog
from echogen_training.config import DataConfig
from echogen_training.data.coco import load_coco
from echogen_training.data.records import RecordStream, list_stream, world_stream


def build_stream(config: DataConfig, rank: int = 0, world: int = 1) -> RecordStream:
    if config.source == "world":
        return world_stream(config.seed, config.split, config.count, config.min_objects, config.max_objects,
                            config.render_scales, rank, world, config.scale_range, config.border_cut)  # fmt: skip
    root = Path(config.path)
    if not root.exists():
        raise FileNotFoundError(f"data.path {root} does not exist")
    image_dir = Path(config.image_dir) if config.image_dir else root / "images"
    if config.source == "folder":  # an `echogen world` export
        records = load_coco([root / "annotations.json"], image_dir)
    elif config.source == "coco":  # instances_*.json + captions_*.json
        files = sorted(root.glob("instances_*.json")) + sorted(root.glob("captions_*.json"))
        if not files:
            raise FileNotFoundError(f"no instances_*.json or captions_*.json in {root}")
        records = load_coco(files, image_dir)
    elif config.source == "refcoco":  # refs(unc).p (or refs.json) + instances.json
        refs = sorted(root.glob("refs*.p")) + sorted(root.glob("refs*.json"))
        if not refs or not (root / "instances.json").is_file():
            raise FileNotFoundError(f"{root} needs refs(<split-by>).p or refs.json and instances.json")
        records = load_coco([root / "instances.json"], image_dir, refs_file=refs[0], split=config.split)
    else:
        raise ValueError(f"unknown data.source {config.source!r}; use world, folder, coco or refcoco")
    return list_stream(records, config.seed, rank, world)


def random_layout(rng: np.random.Generator, max_objects: int = 6) -> tuple[list[tuple[str, tuple]], str]:
    """Random labelled boxes (normalised to a 4:3 frame letterboxed into the square) and a caption."""
    count = int(rng.integers(1, max_objects + 1))
    objects, placed = [], []
    for _ in range(count * 10):
        if len(objects) == count:
            break
        w, h = rng.uniform(0.06, 0.25), rng.uniform(0.06, 0.2)
        x, y = rng.uniform(0, 1 - w), rng.uniform(0.125, 0.875 - h)
        box = (x, y, x + w, y + h)
        if any(box[0] < p[2] and p[0] < box[2] and box[1] < p[3] and p[1] < box[3] for p in placed):
            continue
        colour = list(catalog.COLOURS)[int(rng.integers(len(catalog.COLOURS)))]
        category = catalog.CATEGORIES[int(rng.integers(len(catalog.CATEGORIES)))]
        objects.append((f"{colour} {category}", box))
        placed.append(box)
    return objects, ""
