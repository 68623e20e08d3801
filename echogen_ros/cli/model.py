"""`echogen ground`, `echogen scene`, `echogen imagine` and `echogen model-init`: the model from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from echogen_ros import limits
from echogen_ros.cli.args import bounded_int, probability
from echogen_ros.cli.space import add_depth_args, measured
from echogen_ros.domain import words
from echogen_ros.limits import text_problem
from echogen_ros.model.listing import DEFAULT_LISTING, LISTING_METHODS
from echogen_ros.outputs import write_file
from echogen_ros.runtime.images import encode_png

if TYPE_CHECKING:  # the model imports torch; the command line loads it only when a command needs it
    from echogen_ros.model.finding import Finding
    from echogen_ros.model.inventory import SceneInventory


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("ground", help="find what a referring expression names in an image")
    g.add_argument("--image", type=Path, required=True)
    g.add_argument("--expr", required=True, help='e.g. "the red cup left of the plate"')
    g.add_argument("--model", type=Path, default=None, help="model directory (default: the embedded model)")
    g.add_argument("--top-k", type=bounded_int(1, 32), default=1)
    add_threshold(g)
    g.add_argument("--json", action="store_true", help="print one JSON object (EchoGen.find's Finding)")
    add_depth_args(g)
    add_backend(g)
    g.set_defaults(run=run_ground)

    s = sub.add_parser("scene", help="list every object in an image (the scene inventory)")
    s.add_argument("--image", type=Path, required=True)
    s.add_argument("--model", type=Path, default=None, help="model directory (default: the embedded model)")
    s.add_argument("--threshold", type=probability, default=0.0,
                   help="leave out objects scored below this probability (default 0: every one listed)")  # fmt: skip
    s.add_argument("--listing", choices=LISTING_METHODS, default=DEFAULT_LISTING,
                   help="every label of the vocabulary grounded (labels: any model) or the trained one-pass listing "
                        "(sequence: a model trained with the pmtp task inventory)")  # fmt: skip
    s.add_argument("--json", action="store_true", help="print one JSON object (EchoGen.parse_scene's listing)")
    s.set_defaults(run=run_scene)

    i = sub.add_parser("imagine", help="generate an image of a layout JSON")
    i.add_argument("--layout", type=Path, required=True, help='{"caption", "width", "height", "objects": [...]}')
    i.add_argument("--out", type=Path, required=True, help="output PNG")
    i.add_argument("--model", type=Path, default=None)
    i.add_argument("--seed", type=bounded_int(0, 2**63 - 1), default=None)
    i.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    i.add_argument("--temperature", type=float, default=None)
    i.add_argument("--decoder-map", action="store_true",
                   help="draw with the layout-reading decoder (a model option: it draws the layout's objects "
                        "whatever the generated tokens show)")  # fmt: skip
    i.set_defaults(run=run_imagine)

    m = sub.add_parser("model-init", help="write a randomly initialised model directory (for tests and training)")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--preset", default="tabletop")
    m.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=0)
    m.set_defaults(run=run_init)


def read_image(path: Path) -> np.ndarray:
    """A PNG or JPEG file as RGB uint8, sized from its header before it is decoded (echogen_ros.limits);
    ValueError with the reason when it cannot be read."""
    from echogen_ros.runtime.images import decode, groundable

    if not path.is_file():
        raise ValueError(f"image {path} does not exist")
    if path.stat().st_size > 4 * limits.active().max_decoded_pixels:
        raise ValueError(f"image {path} is larger than any image within the limits "
                         f"({limits.how_to_raise('max_decoded_pixels')})")  # fmt: skip
    image = decode(path.read_bytes(), f"image {path}", cv2.IMREAD_COLOR)
    return groundable(cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image))


def read_layout(path: Path):
    from echogen_ros.model.layout import Layout

    if not path.is_file():
        raise ValueError(f"layout {path} does not exist")
    most = limits.active().max_layout_file_bytes
    if path.stat().st_size > most:
        raise ValueError(f"layout {path} is over {most} bytes ({limits.how_to_raise('max_layout_file_bytes')})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"{path} nests too deeply to be a layout") from None
    return Layout.from_json(data)


def _finite(name: str, value: float | None) -> None:
    if value is not None and not np.isfinite(value):
        raise ValueError(f"--{name} must be a finite number")


def load_model(path: Path | None, backend: str = "torch"):
    """The model with grounding on `backend` (fallback chain logged to stderr)."""
    from echogen_ros.engines.select import load_grounding_model

    return load_grounding_model(path, backend, "cpu", log=lambda line: print(line, file=sys.stderr))


def add_backend(parser: argparse.ArgumentParser) -> None:
    from echogen_ros.engines.select import BACKENDS

    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="grounding backend; falls back tensorrt → onnxruntime → torch with a message")  # fmt: skip


def add_threshold(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """--threshold (and `aliases`): the probability a box must reach; None when not given (the model's default)."""
    parser.add_argument(
        "--threshold",
        *aliases,
        dest="threshold",
        type=probability,
        default=None,
        help="the probability a box must reach to count as found (default: the model's, 0.5)",
    )


def run_ground(args: argparse.Namespace) -> int:
    problem = text_problem(args.expr, "--expr")
    if problem:
        raise ValueError(problem)
    image = read_image(args.image)
    space = measured(args, image)  # before the model loads: a bad --depth or --camera is said at once
    model = load_model(args.model, args.backend)
    from echogen_ros.model.finding import DEFAULT_THRESHOLD  # torch: loaded with the model

    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    finding = model.find(image, args.expr, threshold, args.top_k)
    report = finding.to_json()
    for detection in report["detections"] if space is not None else ():
        detection["box3d"] = space.box3d(detection["box"])
    print(json.dumps(report) if args.json else describe(finding, report))
    return 0


def describe(finding: Finding, report: dict | None = None) -> str:
    """What `ground` prints for a person: each box and its probability (and 3D box), or not found and why."""
    kind = "probability" if finding.calibrated else "score (uncalibrated)"
    shown = (report or finding.to_json())["detections"]
    lines = [f"found {d.label!r}: box {s['box']} {kind} {d.score:.2f}" + _in_space(s.get("box3d"))
             for d, s in zip(finding.detections, shown)]  # fmt: skip
    if not finding.found:
        lines.append(f"not found: {finding.reason}")
    note = words.read(finding.phrase).not_understood()
    if note and note not in finding.reason:
        lines.append(note)
    return "\n".join([*lines, f"({finding.latency_ms:.1f} ms)"])


def _in_space(box3d: dict | None) -> str:
    if box3d is None:
        return ""
    if "reason" in box3d:
        return f"; no 3D box: {box3d['reason']}"
    return f"; 3D centre {box3d['center']} size {box3d['size']} m in {box3d['frame']}"


def run_scene(args: argparse.Namespace) -> int:
    image = read_image(args.image)
    listing = load_model(args.model).parse_scene(image, args.threshold, args.listing)  # sequence, untrained: exit 2
    print(json.dumps(listing.to_json()) if args.json else describe_scene(listing))
    return 0


def describe_scene(listing: SceneInventory) -> str:
    """What `scene` prints for a person: each object, its box and score, or why nothing is listed."""
    kind = "probability" if listing.calibrated else "score (uncalibrated)"
    lines = [f"{d.label}: box {d.to_json()['box']} {kind} {d.score:.2f}" for d in listing.objects]
    if not listing.objects:
        lines.append(f"nothing listed: {listing.reason}")
    return "\n".join([*lines, f"({listing.latency_ms:.1f} ms)"])


def run_imagine(args: argparse.Namespace) -> int:
    _finite("guidance", args.guidance)
    _finite("temperature", args.temperature)
    if args.temperature is not None and args.temperature < 0:
        raise ValueError("--temperature must be >= 0")
    if args.out.suffix.lower() != ".png":
        raise ValueError(f"--out must be a .png file, got {args.out}")
    layout = read_layout(args.layout)
    model = load_model(args.model)
    layout.validate(model.max_objects)
    start = time.perf_counter()
    image = model.imagine(layout, seed=args.seed, guidance=args.guidance, temperature=args.temperature,
                          decoder_map=args.decoder_map)  # fmt: skip
    latency = (time.perf_counter() - start) * 1000
    write_file(args.out, encode_png(image))
    print(json.dumps({"out": str(args.out), "width": layout.width, "height": layout.height,
                      "decoder_map": args.decoder_map, "latency_ms": round(latency, 1)}))  # fmt: skip
    return 0


def run_init(args: argparse.Namespace) -> int:
    from echogen_ros.model.echogen import EchoGen

    model = EchoGen.create(args.preset, seed=args.seed)
    model.save(args.out, stage="init")
    params = sum(p.numel() for p in model.model.parameters())
    print(f"wrote a random {args.preset} model ({params / 1e6:.1f}M parameters) to {args.out}")
    return 0
