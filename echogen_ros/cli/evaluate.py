"""`echogen eval (--data DIR | --world SPLIT | --fresh-heldout) [--model DIR] [--json]`: grounding, layout-to-image
AP and cycle consistency; `--scale-band LO-HI` (repeatable): grounding by band of object scale; `--trust`: how far
answers can be trusted; `--inventory`: the scene inventory's AP."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from echogen_ros.cli.args import bounded_int
from echogen_ros.evaluation.world_sets import FRESH_HELDOUT, USED_HELDOUT, WorldSet
from echogen_ros.exits import UsageError
from echogen_ros.model.listing import DEFAULT_LISTING, LISTING_METHODS
from echogen_ros.world import catalog


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="evaluate a model on an `echogen world` export or on scenes drawn in memory")
    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="a directory written by `echogen world`")
    source.add_argument("--world", choices=catalog.SPLITS, help="draw --count scenes of this split in memory")
    source.add_argument("--fresh-heldout", action="store_true",
                        help=f"the fresh held-out set ({FRESH_HELDOUT.count} scenes of seed {FRESH_HELDOUT.seed}), "
                             "drawn in memory: report on it, choose nothing by it (docs/benchmarks.md)")  # fmt: skip
    e.add_argument("--world-seed", type=bounded_int(0, 2**63 - 1), default=None,
                   help=f"with --world: the scenes' seed (default {USED_HELDOUT.seed})")  # fmt: skip
    e.add_argument("--count", type=bounded_int(1, 1_000_000), default=None,
                   help=f"with --world: how many scenes (default {USED_HELDOUT.count})")  # fmt: skip
    e.add_argument("--scale-band", type=scale_band, action="append", metavar="LO-HI",
                   help="with --world or --fresh-heldout: grounding alone, on the scenes drawn again with every "
                        "object's size times a draw from [LO, HI]; repeatable (0.5-0.7 0.7-1.3 1.3-1.6)")  # fmt: skip
    e.add_argument("--grounding-only", action="store_true", help="imagine nothing (no layout AP, no cycle): fast")
    e.add_argument("--trust", action="store_true",
                   help="with --world or --fresh-heldout: how far the answers can be trusted, on every expression "
                        "with a referent and every no-target one: calibration (ECE, AUROC), no-target accuracy, "
                        "boxes acted on but wrong, at --threshold; by band with --scale-band")  # fmt: skip
    e.add_argument("--inventory", action="store_true",
                   help="with --world or --fresh-heldout: the scene inventory (EchoGen.parse_scene): COCO AP50 of the "
                        "listed objects against the truth, a label its class, beside two controls (another scene's "
                        "listing, the true labels grounded); precision and recall at --threshold; by band with "
                        "--scale-band")  # fmt: skip
    e.add_argument("--listing", choices=LISTING_METHODS, default=DEFAULT_LISTING,
                   help="with --inventory: how the scene is listed: every label grounded (labels, any model) or the "
                        "trained one-pass listing (sequence)")  # fmt: skip
    e.add_argument("--threshold", type=float, default=0.5,
                   help="with --trust or --inventory: the probability a box (object) must reach")  # fmt: skip
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
    e.add_argument("--decoder-map", action="store_true",
                   help="draw the imagined scenes and their controls with the layout-reading decoder (a "
                        "model option that draws objects from the layout: not the generator's figures)")  # fmt: skip
    e.add_argument("--cycle-threshold", type=float, default=None,
                   help="grade the cycle check at this mean IoU (default: the node's cycle_threshold)")  # fmt: skip
    e.add_argument(
        "--inception",
        type=Path,
        default=None,
        help="TorchScript Inception network for FID (e.g. inception-2015-12-05.pt); omitted: FID skipped",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object with every metric")
    e.set_defaults(run=run)


def scale_band(text: str) -> tuple[float, float]:
    """ "0.5-0.7" → (0.5, 0.7)."""
    try:
        lo, hi = (float(v) for v in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO-HI (e.g. 0.5-0.7), got {text!r}") from None
    return lo, hi


def _world_set(args: argparse.Namespace) -> WorldSet | None:
    """The scenes to draw, or None for --data; bad combinations are a UsageError."""
    drawing = [f for f, v in (("--world-seed", args.world_seed), ("--count", args.count)) if v is not None]
    if args.trust and args.inventory:
        raise UsageError("--trust and --inventory are two evaluations: run them one at a time")
    if (args.trust or args.inventory) and (args.data is not None or not 0 <= args.threshold <= 1):
        mode = "--trust" if args.trust else "--inventory"
        raise UsageError(f"{mode} draws scenes (use --world or --fresh-heldout) and --threshold is a probability")
    if args.data is not None:
        if drawing or args.scale_band:
            raise UsageError(f"{' and '.join(drawing) or '--scale-band'} draw scenes: use --world or --fresh-heldout")
        return None
    if args.fresh_heldout:
        if drawing:
            raise UsageError(f"the fresh held-out set is {FRESH_HELDOUT.count} scenes of seed {FRESH_HELDOUT.seed}: "
                             "drop --world-seed/--count (--limit takes its first N)")  # fmt: skip
        return FRESH_HELDOUT
    seed = USED_HELDOUT.seed if args.world_seed is None else args.world_seed
    return WorldSet(args.world, seed, USED_HELDOUT.count if args.count is None else args.count)


def run(args: argparse.Namespace) -> int:
    from echogen_ros.cli.model import load_model
    from echogen_ros.evaluation.run import evaluate, load_export
    from echogen_ros.evaluation.world_sets import by_scale_band, measure_set
    from echogen_ros.model.drawing import NO_MAP, has_decoder_map
    from echogen_ros.world.scene import SceneConfig

    scenes = _world_set(args)
    if scenes is None:
        load_export(args.data)  # a bad --data fails before the model loads
    else:
        for lo, hi in args.scale_band or ():
            SceneConfig(scale_range=(lo, hi))  # a bad band fails before the model loads
    fid = None
    if args.inception is not None:
        from echogen_ros.evaluation.fid import FID, load_inception

        fid = FID(load_inception(args.inception))
    threshold = {} if args.cycle_threshold is None else {"cycle_threshold": args.cycle_threshold}
    if args.cycle_threshold is not None and not 0 <= args.cycle_threshold <= 1:
        raise UsageError("--cycle-threshold is a mean IoU between 0 and 1")
    model = load_model(args.model)
    if args.decoder_map and not has_decoder_map(model):
        raise UsageError(NO_MAP)
    with tqdm(total=0, unit="image", dynamic_ncols=True, disable=args.json) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        options = dict(limit=args.limit, seed=args.seed, progress=progress)
        if args.trust:
            report = trust_report(model, scenes, args.scale_band, args.threshold, args.limit)
        elif args.inventory:
            report = inventory_report(model, scenes, args.scale_band, args.threshold, args.limit, progress,
                                      args.listing)  # fmt: skip
        elif args.scale_band:
            bands = by_scale_band(model, scenes, args.scale_band, **options)
            report = {"scenes": scenes.describe(), "scale_bands": bands}
        else:
            options.update(imagine_limit=args.imagine_limit, noise=args.noise, fid=fid, imagine=not args.grounding_only,
                           decoder_map=args.decoder_map, **threshold)  # fmt: skip
            report = evaluate(model, args.data, **options) if scenes is None else measure_set(model, scenes, **options)
    if fid is None and not (args.scale_band or args.trust or args.inventory):
        report["fid"] = "skipped: pass --inception PATH (a TorchScript Inception network) to compute FID"
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


def trust_report(model, scenes: WorldSet, bands, threshold: float, limit: int) -> dict:
    """`evaluation.trust` on `scenes` (the first `limit`, 0: all), calibrated and by the raw score; by band of
    object scale when `bands` are given."""
    from dataclasses import replace

    from echogen_ros.evaluation import trust

    def measured(config) -> dict:
        rows = trust.collect(model, scenes.split, limit or scenes.count, scenes.seed, config=config)
        return trust.compared(rows, model.calibration, threshold)

    if not bands:
        return {"scenes": scenes.describe(), "trust": measured(scenes.config)}
    by_band = {f"{lo:g}-{hi:g}": measured(replace(scenes.config, scale_range=(lo, hi))) for lo, hi in bands}
    return {"scenes": scenes.describe(), "trust_by_scale_band": by_band}


def inventory_report(model, scenes: WorldSet, bands, threshold: float, limit: int, progress, method: str) -> dict:
    """`evaluation.inventory` of the scene listed by `method` on `scenes` (the first `limit`, 0: all) with its
    controls; by band of object scale when `bands` are given."""
    from dataclasses import replace

    from echogen_ros.evaluation import inventory
    from echogen_ros.model.inventory import require

    if method == "sequence":
        require(model.manifest)  # before a scene is drawn

    def measured(drawn: WorldSet) -> dict:
        data, image = drawn.data()
        return inventory.measure(model, data, image, limit, threshold, progress, method)

    if not bands:
        return {"scenes": scenes.describe(), **measured(scenes)}
    by_band = {f"{lo:g}-{hi:g}": measured(replace(scenes, config=replace(scenes.config, scale_range=(lo, hi))))
               for lo, hi in bands}  # fmt: skip
    return {"scenes": scenes.describe(), "inventory_by_scale_band": by_band}
