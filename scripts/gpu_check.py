"""A GPU check of the embedded model's inference path: load on a device (bf16 by default on CUDA), ground
the 24 fixed held-out scenes of the regression test (accuracy must match the CPU's figures within bf16
noise) and time grounding and imagining with CUDA synchronisation. Prints one JSON object.

    python scripts/gpu_check.py [--device cuda] [--dtype bfloat16|float32]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import Layout, LayoutObject, box_iou
from echogen_ros.world.dataset import world_sample


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default=None, choices=("bfloat16", "float16", "float32"))
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    model = EchoGen.load(device=args.device, dtype=dtype)
    samples = [world_sample(7, i, "heldout") for i in range(24)]
    ious, times = [], []
    for sample in samples:
        if not sample.expressions:
            continue
        image, boxes = sample.image(), sample.boxes()
        _sync(args.device)
        start = time.perf_counter()
        found = model.ground_many(image, [e.text for e in sample.expressions])
        _sync(args.device)
        times.append((time.perf_counter() - start) / len(sample.expressions))
        ious += [box_iou(boxes[e.target], d.box) for e, d in zip(sample.expressions, found)]
    single = []
    for sample in samples[:12]:
        expression, image = sample.expressions[0].text if sample.expressions else "the cup", sample.image()
        _sync(args.device)
        start = time.perf_counter()
        model.ground_many(image, [expression])
        _sync(args.device)
        single.append(time.perf_counter() - start)
    imagine = []
    for i, sample in enumerate(samples[:6]):
        objects = tuple(
            LayoutObject(f"{o.colour} {o.category}", b) for o, b in zip(sample.scene.objects, sample.boxes())
        )
        _sync(args.device)
        start = time.perf_counter()
        model.imagine(Layout(640, 480, objects, sample.caption), seed=i)
        _sync(args.device)
        imagine.append(time.perf_counter() - start)
    ious = np.array(ious)
    print(json.dumps({
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "dtype": str(model.dtype), "expressions": len(ious),
        "acc@0.5": round(float((ious >= 0.5).mean()), 3), "acc@0.75": round(float((ious >= 0.75).mean()), 3),
        "ground_one_ms_p50": round(1000 * float(np.median(single[2:])), 2),
        "ground_per_expression_in_batch_ms_p50": round(1000 * float(np.median(times[2:])), 2),
        "imagine_ms_p50": round(1000 * float(np.median(imagine[1:])), 1),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
