"""The main job without ROS: the sim camera and a scripted sequence of instructions through the
runtime; an MCAP bag and a self-contained HTML report (grounded boxes, imagined goal scenes, verdicts,
timings) as output. Each scene is asked for an object it has and for a category it lacks, so the report shows
what the model answers when the honest answer is "not found"."""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from echogen_ros.interfaces import typestore
from echogen_ros.model.layout import box_iou
from echogen_ros.outputs import staged
from echogen_ros.overlay import draw_boxes
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.core import Runtime, RuntimeConfig
from echogen_ros.runtime.images import encode_png, to_rgb
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.runtime.sim_camera import SimCamera

TOPICS = {
    "/image": "sensor_msgs/msg/Image",
    "/camera_info": "sensor_msgs/msg/CameraInfo",
    "/instruction": "std_msgs/msg/String",
    "/echogen/detections": "vision_msgs/msg/Detection2DArray",
    "/echogen/debug_image": "sensor_msgs/msg/Image",
    "/echogen/imagined": "sensor_msgs/msg/Image",
    "/echogen/goal_layout": "echogen_ros/msg/Layout",
}


@dataclass
class Step:
    scene: int
    instruction: str
    kind: str  # "ground" | "imagine"
    images: list[tuple[str, np.ndarray]] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)


def _png(image: np.ndarray) -> str:
    return base64.b64encode(encode_png(image)).decode()


def run_demo(
    out: Path,
    model,
    scenes: int = 3,
    seed: int = 0,
    model_note: str = "",
    model_info: str = "",
    threshold: float = RuntimeConfig.score_threshold,
) -> Path:
    """Write `out/bag` (MCAP) and `out/report.html` all at once; return the report's path. `out` must be new,
    empty or an earlier demo's output (which is replaced). `threshold`: as the node's `score_threshold`."""
    config = RuntimeConfig(every_frames=1, every_seconds=0.0, score_threshold=threshold)
    with staged(Path(out), overwrite=True, kind="demo") as tmp:
        tmp.mkdir(parents=True)
        _write_demo(tmp, model, scenes, seed, model_note, model_info, config)
    return Path(out) / "report.html"


def _write_demo(out: Path, model, scenes: int, seed: int, model_note: str, model_info: str, config) -> None:
    store = typestore("humble")
    msgs = MessageTypes.from_typestore(store)
    camera = SimCamera(msgs, seed=seed, split="test", frames_per_scene=1)  # one frame a scene: scene k is k
    runtime = Runtime(model, msgs, config)
    steps: list[Step] = []
    with Writer(out / "bag", version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {topic: writer.add_connection(topic, kind, typestore=store) for topic, kind in TOPICS.items()}

        def write(topic: str, message, seconds: float) -> None:
            writer.write(conns[topic], int(seconds * 1e9), store.serialize_cdr(message, TOPICS[topic]))

        clock = 1.0
        for scene in range(scenes):
            image, info, sample = camera.next(clock)
            boxes = sample.boxes()
            script = [e for e in sample.expressions if e.kind == "relation"][:1] or sample.expressions[:1]
            script += [e for e in sample.absent if e.kind == "category"][:1]  # an object the scene lacks
            for expr in script:
                write("/instruction", conv.string(msgs, expr.text), clock)
                runtime.on_instruction(expr.text)
                runtime.on_image(image, clock)
                write("/image", image, clock)
                write("/camera_info", info, clock)
                start = time.perf_counter()
                outputs = runtime.step(clock)
                ms = (time.perf_counter() - start) * 1000
                write("/echogen/detections", outputs.detections, clock)
                write("/echogen/debug_image", outputs.debug_image, clock)
                truth = boxes[expr.target] if expr.target is not None else None
                shown = draw_boxes(sample.image(), [truth], ["ground truth"]) if truth else sample.image()
                step = Step(scene, expr.text, "ground", [("grounded", to_rgb(outputs.debug_image)),
                                                         ("ground truth" if truth else "not in the scene", shown)])
                step.facts = [*_answer(outputs.findings[0], truth), ("latency", f"{ms:.1f} ms")]
                steps.append(step)
                clock += 0.5
            for ins in [i for i in sample.instructions if i.action == "put"][:1]:
                write("/instruction", conv.string(msgs, ins.text), clock)
                runtime.on_instruction(ins.text)
                goal = msgs.ImagineGoal(
                    instruction=ins.text, layout=conv.empty_layout(msgs, image.header), seed=scene, guidance=0.0
                )
                start = time.perf_counter()
                result = runtime.imagine(goal)
                ms = (time.perf_counter() - start) * 1000
                step = Step(scene, ins.text, "imagine")
                if result.success:
                    write("/echogen/imagined", result.image, clock)
                    write("/echogen/goal_layout", result.goal_layout, clock)
                    layout = conv.layout_of(result.goal_layout)
                    planned = draw_boxes(
                        sample.image(), [o.box for o in layout.objects], [o.label for o in layout.objects]
                    )
                    picture = to_rgb(result.image)
                    shown = layout.resized(picture.shape[1], picture.shape[0])  # the imagined size may be smaller
                    imagined = draw_boxes(picture, [o.box for o in shown.objects], [o.label for o in shown.objects])
                    step.images = [("goal layout on the camera frame", planned), ("imagined goal scene", imagined)]
                    step.facts = [
                        ("cycle IoU", f"{result.cycle_iou:.2f}"),
                        ("satisfied now", str(result.satisfied_now)),
                        ("latency", f"{ms:.0f} ms"),
                    ]
                else:
                    step.images = [("camera frame", sample.image())]
                    step.facts = [("result", result.message)]
                steps.append(step)
                clock += 0.5
    (out / "report.html").write_text(_html(steps, model_note, model_info), encoding="utf-8")


def _answer(finding, truth) -> list[tuple[str, str]]:
    """The report's lines for one grounding: what the model answered, and how that compares with the truth."""
    if not finding.found:
        return [("answer", f"not found: {finding.reason}"),
                ("the truth", "in the scene" if truth else "not in the scene: not found is right")]  # fmt: skip
    best = finding.detections[0]
    kind = "probability" if finding.calibrated else "score (uncalibrated)"
    check = (("IoU with the truth", f"{box_iou(best.box, truth):.2f}") if truth
             else ("the truth", "not in the scene: this box is wrong"))  # fmt: skip
    return [("answer", f"found, {kind} {best.score:.3f}"), check]


def _html(steps: list[Step], note: str, info: str = "") -> str:
    rows = []
    for step in steps:
        figures = "".join(
            f'<figure><img src="data:image/png;base64,{_png(img)}" width="320">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>"
            for title, img in step.images
        )
        facts = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in step.facts)
        rows.append(f"<section><h2>scene {step.scene}: {step.kind} — “{html.escape(step.instruction)}”</h2>"
                    f"<div class=row>{figures}</div><ul>{facts}</ul></section>")  # fmt: skip
    warning = f'<p class="warn">{html.escape(note)}</p>' if note else ""
    warning += f"<p>{html.escape(info)}</p>" if info else ""
    style = ("body{font-family:sans-serif;max-width:1000px;margin:auto}.row{display:flex;gap:12px}"
             "figure{margin:0}.warn{background:#fee;padding:8px;border:1px solid #c00}")  # fmt: skip
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>echogen_ros demo</title><style>{style}</style>"
            f"</head><body><h1>echogen_ros demo</h1>{warning}{''.join(rows)}</body></html>\n")  # fmt: skip
