"""The main job without ROS: the sim camera and a scripted sequence of instructions through the
runtime; an MCAP bag and a self-contained HTML report (grounded boxes, imagined goal scenes, verdicts,
timings) as output. Each scene is asked for an object it has and for a category it lacks, so the report shows
what the model answers when the honest answer is "not found". The sim camera's depth (16UC1), CameraInfo and
/tf_static go into the bag and the runtime, as a depth camera's would: the bag holds detections_3d and
goal_pose in the table frame, and the report each grounding's 3D centre and the goal pose beside the world's
truth."""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from echogen_ros.domain.camera import Box3D, relation_in_space
from echogen_ros.domain.relations import Truth
from echogen_ros.interfaces import typestore
from echogen_ros.model.layout import box_iou
from echogen_ros.outputs import staged
from echogen_ros.overlay import draw_boxes
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.core import Runtime, RuntimeConfig
from echogen_ros.runtime.images import encode_png, to_rgb
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.runtime.sim_camera import SimCamera
from echogen_ros.world.camera import VIEW_EXTENT_M, box3d
from echogen_ros.world.dataset import WorldSample

TOPICS = {
    "/image": "sensor_msgs/msg/Image",
    "/camera_info": "sensor_msgs/msg/CameraInfo",
    "/depth": "sensor_msgs/msg/Image",  # 16UC1 millimetres, registered to /image (RealSense's aligned depth)
    "/tf_static": "tf2_msgs/msg/TFMessage",
    "/instruction": "std_msgs/msg/String",
    "/echogen/detections": "vision_msgs/msg/Detection2DArray",
    "/echogen/debug_image": "sensor_msgs/msg/Image",
    "/echogen/imagined": "sensor_msgs/msg/Image",
    "/echogen/goal_layout": "echogen_ros/msg/Layout",
    "/echogen/scene": "vision_msgs/msg/Detection2DArray",
    "/echogen/detections_3d": "vision_msgs/msg/Detection3DArray",
    "/echogen/goal_pose": "geometry_msgs/msg/PoseStamped",
}


@dataclass
class Step:
    scene: int
    instruction: str
    kind: str  # "ground" | "goal"
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
    config = RuntimeConfig(every_frames=1, every_seconds=0.0, score_threshold=threshold).changed(target_frame="table")
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

        static = camera.camera_to_table(0.5)
        write("/tf_static", static, 0.5)
        runtime.on_transforms(static)
        clock = 1.0
        for scene in range(scenes):
            image, info, sample = camera.next(clock)
            depth = camera.depth(image.header, "16UC1")
            for topic, message, feed in (("/image", image, None), ("/camera_info", info, runtime.on_camera_info),
                                         ("/depth", depth, runtime.on_depth)):  # fmt: skip
                write(topic, message, clock)
                if feed is not None:
                    feed(message)
            demo = _Scene(runtime, msgs, write, image, sample, scene)
            script = [e for e in sample.expressions if e.kind == "relation"][:1] or sample.expressions[:1]
            script += [e for e in sample.absent if e.kind == "category"][:1]  # an object the scene lacks
            for expr in script:
                steps.append(demo.ground(expr, clock))
                clock += 0.5
            orders = [i for i in sample.instructions if i.action == "put"][:1]
            orders += [i for i in sample.instructions if i.action == "pick"][:1]
            for order in orders:
                steps.append(demo.goal(order, clock))
                clock += 0.5
    (out / "report.html").write_text(_html(steps, model_note, model_info), encoding="utf-8")


@dataclass
class _Scene:
    """One sim-camera frame through the runtime: its groundings and its goals, each a step of the report."""

    runtime: Runtime
    msgs: MessageTypes
    write: Callable[[str, object, float], None]
    image: object  # sensor_msgs/Image
    sample: WorldSample
    index: int

    def grounded(self, text: str, clock: float):
        """Set `text` as the instruction and ground the frame as the node does: the stream's outputs."""
        self.write("/instruction", conv.string(self.msgs, text), clock)
        self.runtime.on_instruction(text)
        self.runtime.on_image(self.image, clock)
        listed, outputs = self.runtime.replay_step(clock)
        self.write("/echogen/detections", outputs.detections, clock)
        self.write("/echogen/debug_image", outputs.debug_image, clock)
        named = {"/echogen/scene": listed.scene, "/echogen/detections_3d": outputs.detections_3d,
                 "/echogen/goal_pose": outputs.goal_pose}  # fmt: skip
        for topic, message in named.items():
            if message is not None:
                self.write(topic, message, clock)
        return outputs

    def ground(self, expr, clock: float) -> Step:
        """A referring expression grounded, beside the truth."""
        start = time.perf_counter()
        outputs = self.grounded(expr.text, clock)
        ms = (time.perf_counter() - start) * 1000
        truth = self.sample.boxes()[expr.target] if expr.target is not None else None
        shown = draw_boxes(self.sample.image(), [truth], ["ground truth"]) if truth else self.sample.image()
        step = Step(
            self.index,
            expr.text,
            "ground",
            [("grounded", to_rgb(outputs.debug_image)), ("ground truth" if truth else "not in the scene", shown)],
        )
        step.facts = [*_answer(outputs.findings[0], truth), *self.placed(outputs, {"target": expr.target}),
                      ("latency", f"{ms:.1f} ms")]  # fmt: skip
        return step

    def placed(self, outputs, roles: dict[str, int | None]) -> list[tuple[str, str]]:
        """The report's lines for where depth put each grounded referent (role → the truth's object index, None:
        not in the scene): its 3D centre in the table frame beside the world's."""
        if outputs.detections_3d is None:
            return [("3D", _clause(outputs.status, "2D only"))]
        located = {d.id: d for d in outputs.detections_3d.detections}
        frame = outputs.detections_3d.header.frame_id
        lines = []
        for role in (r for r in roles if any(d.id == r for d in outputs.detections.detections)):
            name = f"3D centre of the {role.replace('_', ' ')} ({frame} frame)"
            if role not in located:
                lines.append((name, _clause(outputs.status, "2D only")))
                continue
            c = located[role].bbox.center.position
            at = f"({c.x:.3f}, {c.y:.3f}, {c.z:.3f}) m"
            if roles[role] is None:
                lines.append((name, f"{at}; the truth: not in the scene"))
                continue
            truth = box3d(self.sample.scene.objects[roles[role]]).center
            off = np.linalg.norm(np.subtract((c.x, c.y, c.z), truth)) * 100
            lines.append((name, f"{at}; the truth ({', '.join(f'{v:.3f}' for v in truth)}) m, {off:.1f} cm away"))
        return lines

    def goal(self, order, clock: float) -> Step:
        """A command (a world `Instruction`): its referents grounded (only those found are acted on) against the
        truth, the goal layout of the whole scene on the live frame beside its imagined picture, whether the goal
        box is clear of every object the truth has, and the verdict on the live frame."""
        text, boxes = order.text, self.sample.boxes()
        outputs = self.grounded(text, clock)
        step = Step(self.index, text, "goal", [("live frame: the referents grounded", to_rgb(outputs.debug_image))])
        truths = [boxes[k] for k in (order.target, *order.anchors)]
        step.facts = [("referents", "; ".join(_referent(f, t) for f, t in zip(outputs.findings, truths)))]
        roles = {"target": order.target, **{f"anchor_{i}": k for i, k in enumerate(order.anchors)}}
        step.facts += self.placed(outputs, roles)
        if order.action == "put":
            step.facts.append(("goal pose", self.pose(outputs, order)))
        goal = self.msgs.ImagineGoal(instruction=text, layout=conv.empty_layout(self.msgs, self.image.header),
                                     seed=self.index, guidance=0.0)  # fmt: skip
        start = time.perf_counter()
        result = self.runtime.imagine(goal)
        ms = (time.perf_counter() - start) * 1000
        if not result.success:
            step.facts.append(("no goal", result.message))
            return step
        self.write("/echogen/imagined", result.image, clock)
        self.write("/echogen/goal_layout", result.goal_layout, clock)
        layout = conv.layout_of(result.goal_layout)
        planned = draw_boxes(self.sample.image(), [o.box for o in layout.objects], [o.label for o in layout.objects])
        picture = to_rgb(result.image)
        shown = layout.resized(picture.shape[1], picture.shape[0])  # the imagined size may be smaller
        imagined = draw_boxes(picture, [o.box for o in shown.objects], [o.label for o in shown.objects])
        step.images += [("goal layout on the live frame", planned), ("imagined goal scene", imagined)]
        if order.action == "put":
            step.facts.append(("the goal box against the truth", _clear(layout.objects[0].box, order, self.sample)))
        empty = conv.empty_layout(self.msgs, self.image.header)
        verdict = self.runtime.verify(self.msgs.VerifyRequest(
            instruction=text, goal_layout=empty, image=conv.empty_image(self.msgs, self.image.header)))  # fmt: skip
        now = "satisfied" if verdict.satisfied else "not satisfied"
        step.facts += [
            ("goal", result.message),
            ("cycle IoU (the imagined scene grounded back)", f"{result.cycle_iou:.2f}"),
            ("verdict on the live frame", f"{now}: {verdict.message}"),
            ("latency (plan, imagine, check)", f"{ms:.0f} ms"),
        ]
        return step

    def pose(self, outputs, order) -> str:
        """The goal pose published for a put-command, and whether the target's true 3D box standing there
        satisfies the relation against its anchors' true ones, seen from above."""
        if outputs.goal_pose is None:
            return f"none: {_clause(outputs.status, 'no goal pose')}"
        p, frame = outputs.goal_pose.pose.position, outputs.goal_pose.header.frame_id
        at = f"({p.x:.3f}, {p.y:.3f}, {p.z:.3f}) m in the {frame} frame"
        if frame != "table":
            return at
        objects = self.sample.scene.objects
        moved = box3d(objects[order.target]).standing_at((p.x, p.y, p.z))
        anchors: list[Box3D] = [box3d(objects[k]) for k in order.anchors]
        holds = relation_in_space(order.relation, moved, anchors, VIEW_EXTENT_M) == Truth.TRUE
        verdict = "holds" if holds else "does not hold"
        return f"{at}; the target's true box set there: {order.relation} the truth's anchor(s) {verdict} in 3D"


def _clause(status: str, key: str) -> str:
    """The first clause of a status line that holds `key` (why depth placed nothing), else the line."""
    return next((c for c in status.split("; ") if key in c), status)


def _referent(finding, truth) -> str:
    if finding.found:
        iou = box_iou(finding.detections[0].box, truth)
        return f"{finding.phrase}: found, probability {finding.confidence:.3f}, IoU with the truth {iou:.2f}"
    return f"{finding.phrase}: not found ({finding.reason}), so no goal is built on it"


def _clear(goal_box, order, sample: WorldSample) -> str:
    """Whether a goal box overlaps an object of the truth (the target itself and what it is put on aside)."""
    under = order.anchors if order.relation == "on" else ()
    hit = [o.label for k, (o, box) in enumerate(zip(sample.scene.objects, sample.boxes()))
           if k != order.target and k not in under and box_iou(goal_box, box) > 0]  # fmt: skip
    return f"overlaps the {', the '.join(hit)}, which the model did not list" if hit else "clear of every object"


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
