"""Fit a model's domain check (echogen_ros.model.domain): a Gaussian over its image features of train-split world
renders (half of them with objects at any size, cut by the border, up to 12: `scene_config`), at the sizes
frames come in (the training's render scales, 1280×960, 800×600, 16:9 up to 1080p) and, for half of them,
through a JPEG round trip (quality 80-95) as a compressing camera sends them; its threshold
is set on val renders drawn the same way. The held-out split is never read.

    echogen-train fit-domain --model DIR [--out NEW [--overwrite]] [--scenes 2000] [--val-scenes 500] [--seed 0]

DIR (or, with --out, a copy of it at NEW) gets `domain.safetensors` and the manifest's `domain` record, replacing
a check it had, all at once: a copy is written and then renamed into place, so a failure leaves DIR as it was.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from echogen_ros.model import checkpoint, generation
from echogen_ros.model.domain import DomainCheck, fit, read_domain_check, remove_domain_check, summarise
from echogen_ros.model.echogen import EchoGen
from echogen_ros.outputs import staged, swapped_in
from echogen_ros.world import catalog
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.scene import FITTING_WORLD, scene_config

RENDER_SCALES = (0.5, 0.75, 1.0)  # the training's (DataConfig.render_scales) × 640×480
# larger cameras, another 4:3, and 16:9 (another letterbox); without 1920×1080, 3 % of test renders at that
# size were out of domain (their pixel noise averages away over a 15× downscale)
OTHER_SIZES = ((1280, 960), (800, 600), (640, 360), (1920, 1080))
SIZES = tuple((round(catalog.REF_WIDTH * s), round(catalog.REF_HEIGHT * s)) for s in RENDER_SCALES) + OTHER_SIZES
JPEG_SHARE = 0.5  # of the frames sent through a JPEG round trip
JPEG_QUALITY = (80, 95)  # drawn uniformly, both ends included
BATCH = 32


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """An RGB uint8 image as a camera's JPEG of that quality decodes."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape[1]}x{image.shape[0]} frame as JPEG")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def world_frame(seed: int, index: int, split: str) -> np.ndarray:
    """Scene `index` of `split`, rendered at one of SIZES and, for JPEG_SHARE of them, JPEG-compressed: the
    draw depends only on (seed, split, index)."""
    rng = np.random.default_rng([seed, catalog.SPLITS.index(split), index])
    width, height = SIZES[rng.integers(len(SIZES))]
    image = world_sample(seed, index, split, scene_config(index)).image(width, height)
    if rng.random() < JPEG_SHARE:
        image = jpeg(image, int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
    return image


@torch.inference_mode()
def features(model: EchoGen, images: list[np.ndarray]) -> torch.Tensor:
    """(B, N, D) image features of frames of any sizes, as grounding computes them (letterboxed)."""
    pixels = torch.from_numpy(np.concatenate([model.pixels_array(image)[0] for image in images]))
    return generation.image_features(model.model, pixels.to(model.device, model.dtype))


def summaries(model: EchoGen, seed: int, scenes: int, split: str) -> torch.Tensor:
    """(scenes, 2D) domain summaries of `world_frame`s 0..scenes-1 of `split`."""
    out = []
    for start in range(0, scenes, BATCH):
        frames = [world_frame(seed, i, split) for i in range(start, min(start + BATCH, scenes))]
        out.append(summarise(features(model, frames)))
    return torch.cat(out)


def fit_check(model: EchoGen, seed: int, scenes: int, val_scenes: int) -> DomainCheck:
    """The domain check of `model`: fitted on `scenes` train renders, its threshold from `val_scenes` val ones."""
    fitted_on = {
        "split": "train",
        "seed": seed,
        "scenes": scenes,
        "sizes": [list(s) for s in SIZES],
        "world": FITTING_WORLD,
        "jpeg_share": JPEG_SHARE,
        "jpeg_quality": list(JPEG_QUALITY),
        "dtype": str(model.dtype).removeprefix("torch."),
    }
    record = {"fitted_on": fitted_on, "weights": model.manifest["files"][checkpoint.WEIGHTS]}
    return fit(summaries(model, seed, scenes, "train"), summaries(model, seed, val_scenes, "val"), record)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="the model directory to give a domain check")
    parser.add_argument("--out", type=Path, default=None, help="write the model with its check here instead of --model")
    parser.add_argument("--overwrite", action="store_true", help="replace an --out this tool wrote before")
    parser.add_argument("--scenes", type=int, default=2000, help="train-split scenes to fit on (≥ 100)")
    parser.add_argument("--val-scenes", type=int, default=500, help="val-split scenes to set the threshold on (≥ 100)")
    parser.add_argument("--seed", type=int, default=0, help="the world seed of the scenes")


def run(args: argparse.Namespace) -> int:
    if args.scenes < 100 or args.val_scenes < 100:
        raise ValueError("--scenes and --val-scenes must be ≥ 100: fewer cannot place a 99.5th percentile")
    checkpoint.read_manifest(args.model)  # every file as its manifest says, before anything is copied
    start = time.monotonic()
    if args.out is None:
        with swapped_in(args.model) as partial:
            check = refit(args.model, partial, args.seed, args.scenes, args.val_scenes)
    else:
        with staged(args.out, args.overwrite, kind="model (echogen-train fit-domain)") as partial:
            check = refit(args.model, partial, args.seed, args.scenes, args.val_scenes)
    print(json.dumps({**check.record, "wall_s": round(time.monotonic() - start, 1)}))
    return 0


def refit(model: Path, out: Path, seed: int, scenes: int, val_scenes: int) -> DomainCheck:
    """Copy the model directory `model` to `out` (new) and give the copy a check fitted on its own weights."""
    shutil.copytree(model, out)
    remove_domain_check(out)  # an old check is refitted, never read
    with torch.inference_mode():
        check = fit_check(EchoGen.load(out), seed, scenes, val_scenes)
    check.save(out)
    read_domain_check(out, checkpoint.read_manifest(out))  # reads back as EchoGen.load will
    return check
