"""Imagined-scene metrics by sampling setting: classifier-free guidance and temperature, the two knobs of
`EchoGen.imagine` (a model's defaults are its manifest's `guidance` and `temperature`). One JSON line per
(guidance, temperature): layout-to-image AP / AP50 / AP75 and the cycle IoU / failure rate, measured as
`echogen eval` measures them, on the first --limit images of an export written by `echogen world`. Choose on a
split of seen compositions (test), then report held-out with the chosen setting in the manifest.

    python -m experiments.sampling_sweep MODEL DATA [--guidance 1.5 3 5] [--temperature 1.0] [--limit 60]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from echogen_ros.evaluation.run import evaluate
from echogen_ros.model.checkpoint import CheckpointError
from echogen_ros.model.echogen import EchoGen


def sweep(
    model: EchoGen, directory: Path, guidance: list[float], temperature: list[float], limit: int, seed: int = 0
) -> list[dict]:
    """Per setting: the imagined-scene half of `evaluate` on the first `limit` images (0: all)."""
    rows = []
    defaults = model.guidance, model.temperature
    try:
        for g in guidance:
            for t in temperature:
                model.guidance, model.temperature = g, t
                report = evaluate(model, directory, limit=limit, imagine_limit=limit, seed=seed)
                rows.append({"guidance": g, "temperature": t, **report["layout_to_image"], **report["cycle"]})
    finally:
        model.guidance, model.temperature = defaults
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path, help="a directory written by `echogen world`")
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.5, 3.0, 5.0])
    parser.add_argument("--temperature", type=float, nargs="+", default=[1.0])
    parser.add_argument("--limit", type=int, default=60, help="first N images (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="the sampling seed, as `echogen eval --seed`")
    args = parser.parse_args(argv)
    if any(g < 0 for g in args.guidance) or any(t <= 0 for t in args.temperature) or args.limit < 0:
        print("error: guidance must be >= 0, temperature > 0 and --limit >= 0", file=sys.stderr)
        return 2
    try:
        model = EchoGen.load(args.model)
        rows = sweep(model, args.data, args.guidance, args.temperature, args.limit, args.seed)
    except (CheckpointError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for row in rows:
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
