"""How the domain check (echogen_ros.model.domain) of a model separates its world from everything else (issue 34):
Mahalanobis distances and the share flagged (distance > threshold) for world renders of each split drawn as
`echogen-train fit-domain` draws them (sizes, half JPEG), for test renders of one kind at a time (each size, JPEG
qualities, as the sim camera sends them), and for every synthetic non-scene and scikit-image bundled image
(echogen_ros.evaluation.non_scenes). Run from the repository root:

    PYTHONPATH=training .venv/bin/python -m experiments.domain_check [--model DIR] [--scenes 500] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import numpy as np
import torch
from echogen_training.tools.fit_domain import BATCH, features, jpeg, world_frame

from echogen_ros.evaluation.non_scenes import bundled_images, synthetic_frames
from echogen_ros.model.echogen import EchoGen
from echogen_ros.world.dataset import world_sample

KINDS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"png": lambda image: image}
KINDS.update({f"jpeg {q}": (lambda image, q=q: jpeg(image, q)) for q in (95, 80, 50)})
KINDS["flipped"] = lambda image: np.ascontiguousarray(image[:, ::-1])
KINDS["greyscale"] = lambda image: np.repeat(image.mean(2, keepdims=True).astype(np.uint8), 3, axis=2)
TEST_SIZES = ((640, 480), (320, 240), (1280, 960), (1920, 1080), (160, 120), (1024, 768), (2560, 1440))


def distances(model: EchoGen, images: list[np.ndarray]) -> np.ndarray:
    """The domain check's distance of each image."""
    out = [model.domain.distances(features(model, images[i : i + BATCH])) for i in range(0, len(images), BATCH)]
    return torch.cat(out).numpy()


def summary(d: np.ndarray, threshold: float) -> dict:
    q50, q99 = np.percentile(d, [50, 99])
    return {"frames": len(d), "median": round(float(q50), 1), "p99": round(float(q99), 1),
            "max": round(float(d.max()), 1), "flagged": round(float(np.mean(d > threshold)), 4)}  # fmt: skip


def measure(model: EchoGen, scenes: int, seed: int = 0) -> dict:
    threshold = model.domain.threshold
    splits = {s: distances(model, [world_frame(seed, i, s) for i in range(scenes)]) for s in ("val", "test", "heldout")}
    kinds = {}
    for width, height in TEST_SIZES:
        frames = [world_sample(seed, i, "test").image(width, height) for i in range(scenes // 2)]
        for kind, change in KINDS.items():
            if kind == "png" or (width, height) == (640, 480):
                kinds[f"{width}x{height} {kind}"] = distances(model, [change(f) for f in frames])
    others = {"synthetic": synthetic_frames()}
    try:
        others["bundled"] = bundled_images()
    except ModuleNotFoundError:
        print("scikit-image is not installed: no photos measured (pip install scikit-image)", file=sys.stderr)
    foreign = {group: dict(zip(images, distances(model, list(images.values())).round(1).tolist()))
               for group, images in others.items()}  # fmt: skip
    return {
        "threshold": round(threshold, 2),
        "splits": {name: summary(d, threshold) for name, d in splits.items()},
        "test frames": {name: summary(d, threshold) for name, d in kinds.items()},
        "non-scenes": foreign,
        "nearest non-scene / threshold": round(min(min(g.values()) for g in foreign.values()) / threshold, 2),
    }


def print_tables(report: dict) -> None:
    print(f"threshold {report['threshold']}\n")
    print("| frames | n | median | p99 | max | flagged |\n|---|---|---|---|---|---|")
    for name, row in {**report["splits"], **report["test frames"]}.items():
        print(f"| {name} | {row['frames']} | {row['median']} | {row['p99']} | {row['max']} | {row['flagged']:.3f} |")
    for group, found in report["non-scenes"].items():
        flagged = sum(d > report["threshold"] for d in found.values())
        ranked = ", ".join(f"{name} {d}" for name, d in sorted(found.items(), key=lambda t: t[1]))
        print(f"\n{group}: {flagged}/{len(found)} flagged; {ranked}")
    print(f"\nnearest non-scene / threshold: {report['nearest non-scene / threshold']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model directory (default: the embedded model)")
    parser.add_argument("--scenes", type=int, default=500, help="scenes per split (half as many per frame kind)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    model = EchoGen.load(args.model)
    if model.domain is None:
        parser.error("the model has no domain check: run `echogen-train fit-domain --model DIR` first")
    report = measure(model, args.scenes, args.seed)
    print(json.dumps(report, indent=2)) if args.json else print_tables(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
