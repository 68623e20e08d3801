"""`echogen bench`: grounding / imagining latency, FLOPs and the achieved fraction of matmul peak."""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from echogen_ros.cli.args import bounded_int
from echogen_ros.perf import matmul_peak, percentile

# phrases whose `find` runs one answer check (`model.finding.CHECKS`), timed against `find` of a phrase without one;
# the closer look runs on a box below a ninth of the frame's side, so its phrase is asked of a frame of small objects
# (with a colour: a bare category would add the category check)
CHECKED_PHRASES = {"the cup left of the plate": "relation", "the second cup from the left": "ordinal",
                   "the plate": "category", "the yellow cup": "closer_look"}  # fmt: skip
SMALL_OBJECTS = (0.5, 0.6)  # the scale of the closer look's frame


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="measure grounding and imagining speed on this machine")
    b.add_argument("--model", type=Path, default=None, help="model directory (default: a random tabletop model)")
    b.add_argument("--iterations", type=bounded_int(5, 100_000), default=50)
    b.add_argument("--imagine-iterations", type=bounded_int(0, 1000), default=5)
    b.add_argument("--threads", type=bounded_int(0, 256), default=0, help="torch threads (0: torch's default)")
    b.add_argument(
        "--backend", default="torch", help="comma-separated: torch,onnxruntime,tensorrt (measured in one run)"
    )
    b.add_argument("--json", action="store_true")
    b.set_defaults(run=run)
    register_node_bench(sub)


def show(result: dict, as_json: bool) -> None:
    """One JSON object, or aligned `key: value` lines."""
    if as_json:
        print(json.dumps(result))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:>{width}}: {value}")


def grounding_flops(model, image: np.ndarray, expression: str) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model.ground(image, expression)
    return int(counter.get_total_flops())


def run(args: argparse.Namespace) -> int:
    import torch

    from echogen_ros.model.echogen import EchoGen
    from echogen_ros.model.layout import Layout, LayoutObject
    from echogen_ros.world.dataset import world_sample
    from echogen_ros.world.scene import SceneConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    model = EchoGen.load(args.model) if args.model else EchoGen.create("tabletop")
    sample = world_sample(0, 0, "test")
    image = sample.image(640, 480)
    expression = sample.expressions[0].text if sample.expressions else "the cup"
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    timings = {name: _time_backend(model, args.model, name, image, expression, args.iterations) for name in backends}
    ground_ms = timings[backends[0]]
    layout = Layout(640, 480, tuple(LayoutObject(o.category, b) for o, b in zip(sample.scene.objects, sample.boxes())))
    imagine_ms = []
    for seed in range(args.imagine_iterations):
        start = time.perf_counter()
        model.imagine(layout, caption=sample.caption, seed=seed)
        imagine_ms.append((time.perf_counter() - start) * 1000)
    top2_ms, find_ms = [], []  # a rival on another object (verification); the calibrated answer (the node, CLI)
    checked = {phrase: [] for phrase in CHECKED_PHRASES}  # `find` of phrases its answer checks read
    small = world_sample(0, 0, "test", SceneConfig(scale_range=SMALL_OBJECTS)).image(640, 480)
    frames = {p: small if check == "closer_look" else image for p, check in CHECKED_PHRASES.items()}
    for _ in range(max(5, args.iterations // 5)):
        for calls, call in ((top2_ms, lambda: model.ground(image, expression, top_k=2)),
                            (find_ms, lambda: model.find(image, expression)),
                            *((checked[p], lambda p=p: model.find(frames[p], p)) for p in checked)):  # fmt: skip
            start = time.perf_counter()
            call()
            calls.append((time.perf_counter() - start) * 1000)
    flops = grounding_flops(model, image, expression)
    peak = matmul_peak(torch.float32) / 1e9
    p50 = percentile(ground_ms, 50)
    result = {
        "model": str(args.model) if args.model else "random tabletop",
        "threads": torch.get_num_threads(),
        "ground_p50_ms": round(p50, 2),
        "ground_p95_ms": round(percentile(ground_ms, 95), 2),
        "ground_fps": round(1000 / p50, 1),
        "ground_top2_p50_ms": round(percentile(top2_ms, 50), 2),
        "find_p50_ms": round(percentile(find_ms, 50), 2),  # torch whatever the backend: its beams give the margin
        "find_vs_ground": round(percentile(find_ms, 50) / p50, 2),
        **{
            f"find_{check}_check_vs_find": round(percentile(checked[phrase], 50) / percentile(find_ms, 50), 2)
            for phrase, check in CHECKED_PHRASES.items()
        },
        "imagine_p50_ms": round(percentile(imagine_ms, 50), 1) if imagine_ms else None,
        "ground_gflop": round(flops / 1e9, 4),
        "matmul_peak_fp32_gflops": round(peak, 1),
        "matmul_peak_bf16_gflops": round(matmul_peak(torch.bfloat16) / 1e9, 1),
        "ground_peak_fraction": round(flops / (p50 / 1000) / (peak * 1e9), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    for name, values in timings.items():
        p50_b = percentile(values, 50)
        result[f"{name}_ground_p50_ms"] = round(p50_b, 2)
        result[f"{name}_ground_p95_ms"] = round(percentile(values, 95), 2)
        result[f"{name}_speedup_vs_{backends[0]}"] = round(p50 / p50_b, 2)
    show(result, args.json)
    return 0


def _time_backend(model, model_dir, backend: str, image, expression: str, iterations: int) -> list[float]:
    """Grounding latencies (ms) with `backend` attached (pre- and post-processing included)."""
    from echogen_ros.engines.base import BackendUnavailable

    grounded = model
    if backend == "onnxruntime":
        from echogen_ros.engines.onnxruntime_engine import OnnxRuntimeGrounder

        grounded = OnnxRuntimeGrounder.for_model(model, model_dir).attach(model)
    elif backend == "tensorrt":
        from echogen_ros.engines.tensorrt_engine import TensorRTGrounder

        try:
            grounded = TensorRTGrounder.for_model(model, model_dir).attach(model)
        except BackendUnavailable as exc:
            raise ValueError(f"cannot benchmark tensorrt: {exc}") from None
    elif backend != "torch":
        raise ValueError(f"unknown backend {backend!r}")
    for _ in range(3):
        grounded.ground(image, expression)
    values = []
    for _ in range(iterations):
        start = time.perf_counter()
        grounded.ground(image, expression)
        values.append((time.perf_counter() - start) * 1000)
    return values


def register_node_bench(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench-node", help="node overhead per 640×480 frame: conversions + pre/post-processing")
    b.add_argument("--iterations", type=bounded_int(10, 100_000), default=200)
    b.add_argument("--json", action="store_true")
    b.set_defaults(run=run_node_bench)


def run_node_bench(args: argparse.Namespace) -> int:
    """Everything the node does per frame except the model: decode the camera message, letterbox and
    normalise, build the Detection2DArray and the annotated debug image message."""
    from echogen_ros.interfaces import typestore
    from echogen_ros.model.echogen import EchoGen
    from echogen_ros.model.layout import Detection
    from echogen_ros.overlay import draw_boxes
    from echogen_ros.runtime import conversions as conv
    from echogen_ros.runtime.images import to_rgb
    from echogen_ros.runtime.messages import MessageTypes
    from echogen_ros.world.dataset import world_sample

    msgs = MessageTypes.from_typestore(typestore("humble"))
    model = EchoGen.create("tabletop")
    rgb = world_sample(0, 0, "test").image(640, 480)
    message = conv.image_message(msgs, rgb[..., ::-1].copy(), conv.header(msgs, 1.0, "cam"))
    message.encoding = "bgr8"  # the common driver encoding: a colour conversion is part of the cost
    found = [("the red cup", "target", Detection((100, 120, 180, 200), 0.9, "the red cup")),
             ("the plate", "anchor_0", Detection((300, 220, 420, 300), 0.8, "the plate"))]  # fmt: skip
    stages = {"decode": [], "preprocess": [], "postprocess": []}
    for _ in range(args.iterations + 10):
        t0 = time.perf_counter()
        frame = to_rgb(message)
        t1 = time.perf_counter()
        model.pixels(frame)
        t2 = time.perf_counter()
        conv.detection_array(msgs, message.header, found)
        debug = draw_boxes(frame, [d.box for _, _, d in found], [p for p, _, _ in found])
        conv.image_message(msgs, debug, message.header)
        t3 = time.perf_counter()
        for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
            stages[name].append(seconds * 1000)
    totals = [sum(v) for v in zip(*(values[10:] for values in stages.values()))]
    result = {f"{name}_p50_ms": round(percentile(values[10:], 50), 3) for name, values in stages.items()}
    result.update(total_p50_ms=round(percentile(totals, 50), 3), total_p95_ms=round(percentile(totals, 95), 3),
                  frame="640x480 bgr8", debug_image=True)  # fmt: skip
    show(result, args.json)
    return 0
