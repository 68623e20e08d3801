"""`echogen world` (export a dataset) and `echogen world-bench` (scenes per second)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2

from echogen_ros import limits
from echogen_ros.cli.args import bounded_int
from echogen_ros.world import catalog
from echogen_ros.world.dataset import export, has_target, world_sample
from echogen_ros.world.scene import SceneConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("world", help="write tabletop scenes as COCO instances/captions + RefCOCO refs")
    _scene_args(p)
    p.add_argument("--count", type=bounded_int(1, 10_000_000), required=True, help="number of scenes")
    p.add_argument("--out", type=Path, required=True, help="output directory (created; must not be non-empty)")
    p.add_argument("--split", choices=catalog.SPLITS, default="train")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.set_defaults(run=run_world)

    b = sub.add_parser("world-bench", help="measure scene generation + rendering speed (one core)")
    _scene_args(b)
    b.add_argument("--count", type=bounded_int(1, 1_000_000), default=500)
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.set_defaults(run=run_bench)


def _scene_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=bounded_int(0, 2**63 - 1), default=0)
    # at most what a layout may be (echogen_ros.limits), so every export can be imagined and evaluated
    p.add_argument("--width", type=bounded_int(16, limits.active().max_layout_side), default=catalog.REF_WIDTH)
    p.add_argument("--height", type=bounded_int(16, limits.active().max_layout_side), default=catalog.REF_HEIGHT)
    p.add_argument("--min-objects", type=bounded_int(1, 12), default=2)
    p.add_argument("--max-objects", type=bounded_int(1, 12), default=8)
    p.add_argument("--scale-range", type=float, nargs=2, default=(1.0, 1.0), metavar=("LO", "HI"),
                   help="every object's size times a uniform draw from [LO, HI] (default 1 1: unchanged)")  # fmt: skip
    p.add_argument("--border-cut", type=float, default=0.0,
                   help="objects may stand past the left, right and bottom border by up to this fraction of "
                        "their size (0 to 0.4; default 0: never)")  # fmt: skip


def _config(args: argparse.Namespace) -> SceneConfig:
    if args.min_objects > args.max_objects:
        raise ValueError(f"--min-objects {args.min_objects} is larger than --max-objects {args.max_objects}")
    return SceneConfig(min_objects=args.min_objects, max_objects=args.max_objects,
                       scale_range=tuple(args.scale_range), border_cut=args.border_cut)  # fmt: skip


def run_world(args: argparse.Namespace) -> int:
    config = _config(args)
    data = export(args.out, args.seed, args.count, args.split, args.width, args.height, config, args.overwrite)
    present = sum(has_target(r) for r in data["refs"])
    print(
        f"wrote {len(data['images'])} scenes, {len(data['annotations'])} objects, {present} expressions "
        f"(+ {len(data['refs']) - present} with no referent), {len(data['instructions'])} instructions to {args.out}"
    )
    return 0


def run_bench(args: argparse.Namespace) -> int:
    config = _config(args)
    cv2.setNumThreads(1)
    world_sample(args.seed, 0, "train", config).image(args.width, args.height)  # warm the texture caches
    start = time.perf_counter()
    for index in range(args.count):
        world_sample(args.seed, index, "train", config).image(args.width, args.height)
    seconds = time.perf_counter() - start
    result = {
        "scenes": args.count,
        "width": args.width,
        "height": args.height,
        "scenes_per_s": round(args.count / seconds, 1),
        "ms_per_scene": round(1000 * seconds / args.count, 3),
    }
    summary = f"{result['scenes_per_s']} scenes/s ({result['ms_per_scene']} ms each)"
    print(json.dumps(result) if args.json else f"{summary} at {args.width}x{args.height}, one thread")
    return 0
