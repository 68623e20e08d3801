"""`echogen eval --data DIR [--model DIR] [--json]`: grounding, layout-to-image AP and cycle consistency."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from echogen_ros.cli.args import bounded_int


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="evaluate a model on a directory written by `echogen world`")
    e.add_argument("--data", type=Path, required=True)
    e.add_argument("--model", type=Path, default=None, help="model directory (default: the embedded model)")
    e.add_argument("--limit", type=bounded_int(0, 10_000_000), default=0, help="evaluate the first N images (0: all)")
    e.add_argument("--imagine-limit", type=bounded_int(0, 10_000_000), default=0,
                   help="imagine (AP, cycle) for the first N images only (0: all)")  # fmt: skip
    e.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="jitter the imagined layouts' box corners by this fraction of box size (noisy-layout cycle)",
    )
    e.add_argument("--seed", type=int, default=0, help="seed of image sampling and layout noise")
    e.add_argument(
        "--inception",
        type=Path,
        default=None,
        help="TorchScript Inception network for FID (e.g. inception-2015-12-05.pt); omitted: FID skipped",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object with every metric")
    e.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from echogen_ros.cli.model import load_model
    from echogen_ros.evaluation.run import evaluate, load_export

    load_export(args.data)  # a bad --data fails before the model loads
    fid = None
    if args.inception is not None:
        from echogen_ros.evaluation.fid import FID, load_inception

        fid = FID(load_inception(args.inception))
    model = load_model(args.model)
    with tqdm(total=0, unit="image", dynamic_ncols=True, disable=args.json) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = evaluate(model, args.data, limit=args.limit, imagine_limit=args.imagine_limit, seed=args.seed,
                          progress=progress, noise=args.noise, fid=fid)  # fmt: skip
    if fid is None:
        report["fid"] = "skipped: pass --inception PATH (a TorchScript Inception network) to compute FID"
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0
