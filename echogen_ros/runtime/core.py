"""`Runtime`: the node's behaviour without rclpy. Messages in, messages out; bad input becomes a status
message and the runtime keeps going. Grounding goes through `EchoGen.find`: only referents found at the
threshold (a probability) are published, and what was not found is said on status with the reason."""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from echogen_ros.domain import words
from echogen_ros.limits import text_problem
from echogen_ros.model.layout import Layout, LayoutObject
from echogen_ros.overlay import draw_boxes
from echogen_ros.planning.commands import Command, PlanningError, parse_command
from echogen_ros.planning.grounders import ModelGrounder, lists_scenes
from echogen_ros.planning.imagination import CYCLE_THRESHOLD, imagine_goal
from echogen_ros.planning.planner import plan
from echogen_ros.planning.verify import Verdict, verify_command, verify_layout
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.images import ImageError, compressed_to_rgb, groundable, to_rgb
from echogen_ros.runtime.locator import Locator, SpaceConfig
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.runtime.scene_listing import SceneListing
from echogen_ros.runtime.schedule import Frame, GroundingSchedule, LatestFrame

VERDICT_CODES = {"satisfied": 0, "not_satisfied": 1, "cannot_tell": 2}
MAX_TOP_K = 32


@dataclass
class RuntimeConfig:
    every_frames: int = 10
    every_seconds: float = 1.0
    score_threshold: float = 0.5  # the probability a referent must reach to be published or acted on
    debug_image: bool = True
    guidance: float | None = None  # None: the model's default
    cycle_threshold: float = CYCLE_THRESHOLD  # the imagined scene's mean cycle IoU under which it is not the goal
    decoder_map: bool = False  # show the layout-reading decoder's drawing (the cycle check grades the generator's)
    scene_every_seconds: float = 5.0  # start a listing of the whole scene at most this often (0: one after another)
    scene_max_age_seconds: float = 15.0  # a goal pose keeps clear of a listing started at most this long ago (0: any)
    space: SpaceConfig = SpaceConfig()  # depth and frames: the 3D outputs

    def changed(self, **changes) -> RuntimeConfig:
        """A copy with fields changed: this config's, and its SpaceConfig's by their own names (target_frame...)."""
        space = {name: changes.pop(name) for name in SPACE_FIELDS & changes.keys()}
        return dataclasses.replace(self, **changes, space=dataclasses.replace(self.space, **space))


SPACE_FIELDS = frozenset(f.name for f in dataclasses.fields(SpaceConfig))


@dataclass
class Outputs:
    detections: object | None  # vision_msgs/Detection2DArray; None when the frame could not be grounded
    debug_image: object | None  # sensor_msgs/Image
    status: str
    findings: tuple = ()  # model.finding.Finding per phrase: found or not, and why
    detections_3d: object | None = None  # vision_msgs/Detection3DArray of the referents depth places; None: 2D only
    goal_pose: object | None = None  # geometry_msgs/PoseStamped where a put-command's target goes; None: no pose


@dataclass(frozen=True)
class SceneStep:
    """What a step of the scene listing gives (`Runtime.list_step`)."""

    scene: object | None = None  # vision_msgs/Detection2DArray of the listing made in this step, stamped with its frame
    under_way: bool = False  # a listing has steps left
    status: str | None = None  # a problem to say on status


@dataclass
class Counters:
    frames: int = 0
    skipped: int = 0
    groundings: int = 0
    last_latency_ms: float = 0.0
    last_status: str = "waiting for frames"
    not_found: str = ""  # the phrases the last grounding did not find, and why
    scenes: int = 0  # scene listings made
    errors: list[str] = field(default_factory=list)


def _guidance(scale: float | None) -> str:
    return "of the model" if scale is None else f"{scale:g}"


class Runtime:
    def __init__(self, model, msgs: MessageTypes, config: RuntimeConfig | None = None) -> None:
        self.model, self.msgs = model, msgs
        self.config = config or RuntimeConfig()
        self.latest = LatestFrame()
        self.schedule = GroundingSchedule(self.config.every_frames, self.config.every_seconds)
        self.counters = Counters()
        self.instruction: str | None = None
        self.command: Command | None = None  # the instruction's, when it is a command
        self.phrases: list[tuple[str, str]] = []  # (phrase as given, id = role)
        self.locator = Locator(msgs, self.config.space)  # camera_info, depth frames, transforms
        self._model_lock = threading.Lock()  # one inference at a time (services and the stream share it)
        self.listing = SceneListing()  # beside the grounding stream (`list_step`)

    @property
    def grounder(self) -> ModelGrounder:
        """The planner's grounder at the live threshold."""
        return ModelGrounder(self.model, self.config.score_threshold)

    @property
    def lists_scenes(self) -> bool:
        """Whether the model lists every object in a frame (`list_step` gives the `scene` message)."""
        return lists_scenes(self.model)

    def reconfigure(self, **changes) -> None:
        """Change RuntimeConfig fields while running (e.g. a parameter set on the live node)."""
        config = self.config.changed(**changes)
        self.schedule.set_period(config.every_frames, config.every_seconds)
        self.config, self.locator.config = config, config.space

    # ---- intake ------------------------------------------------------------------------------
    def on_image(self, msg, now: float) -> str | None:
        return self._intake(msg, now, to_rgb)

    def on_compressed(self, msg, now: float) -> str | None:
        return self._intake(msg, now, compressed_to_rgb)

    def _intake(self, msg, now: float, decode) -> str | None:
        try:
            rgb = groundable(decode(msg))
        except ImageError as exc:
            self.counters.skipped += 1
            return self._status(f"skipped frame: {exc}", error=True)
        self.latest.put(Frame(rgb, msg.header, now))
        self.counters.frames += 1
        self.schedule.frame_arrived()
        return None

    def on_instruction(self, text: str) -> str:
        """Set what to ground: a command's target and anchors, or a referring expression. A phrase naming no
        known object stays in the list, so that every grounding says why it was not found; an instruction with
        nothing it could ground grounds nothing."""
        error = text_problem(text, "instruction")
        if error:
            return self._status(error, error=True)
        text = text.strip()
        try:
            command = parse_command(text)
            phrases = [(command.target, "target")] + [(a, f"anchor_{i}") for i, a in enumerate(command.anchors)]
        except PlanningError:
            command, phrases = None, [(text, "target")]  # a referring expression: "the red cup left of the plate"
        readings = [(words.read(phrase), role) for phrase, role in phrases]
        problems = [r.problem for r, _ in readings if r.problem]
        notes = [f"in {r.phrase!r}: {r.not_understood()}" for r, _ in readings if r.unknown and not r.problem]
        groundable = [r.text for r, _ in readings if not r.problem]  # in the vocabulary's words
        self.command = command  # before the phrases: a grounding that sees new phrases publishes nothing old
        self.phrases = phrases if groundable else []
        self.instruction = text
        self.schedule.instruction_arrived()
        grounding = f"grounding {', '.join(groundable)}" if groundable else "nothing to ground"
        said = "; ".join([f"instruction: {text!r}", grounding, *(f"not grounded: {p}" for p in problems), *notes])
        return self._status(said, error=bool(problems))

    # ---- the grounding stream ------------------------------------------------------------------
    def grounding_due(self, now: float) -> bool:
        """Whether `step` grounds now, given a frame it has not grounded."""
        return bool(self.phrases) and self.schedule.due(now)

    def step(self, now: float) -> Outputs | None:
        """Ground the latest frame when the schedule says so; None when there is nothing to do."""
        phrases = self.phrases  # this grounding's: an instruction arriving meanwhile puts a new list in its place
        command = self.command
        if not phrases or not self.schedule.due(now):  # as `grounding_due`, on this grounding's phrases
            return None
        frame = self.latest.take()
        if frame is None:
            return None
        start = time.perf_counter()
        seen = self.locator.view(frame.header) if self.locator.active else None  # its depth, before it is dropped
        try:
            with self._model_lock:
                findings = self.model.find_many(frame.rgb, [p for p, _ in phrases], self.config.score_threshold)
        except (ValueError, RuntimeError) as exc:  # one frame the model cannot take must not stop the stream
            self.schedule.grounded(now)
            return Outputs(None, None, self._status(f"cannot ground this frame: {exc}", error=True))
        self.schedule.grounded(now)
        if self.phrases is not phrases:  # the instruction changed while this frame was grounded: never publish
            return None  # boxes of what is no longer asked for under the new instruction's name
        latency = (time.perf_counter() - start) * 1000
        self.counters.groundings += 1
        self.counters.last_latency_ms = latency
        best = [(f.detections[0], role) for (_, role), f in zip(phrases, findings) if f.found]
        kept = [(d.label, role, d) for d, role in best]  # class_id: the phrase in the vocabulary's words
        detections = conv.detection_array(self.msgs, frame.header, kept)
        debug = None
        if self.config.debug_image:
            labels = [f"{label} {d.score:.2f}" for label, _, d in kept]
            debug = conv.image_message(
                self.msgs, draw_boxes(frame.rgb, [d.box for _, _, d in kept], labels), frame.header
            )
        self.counters.not_found = missing = not_found(findings)
        last = self.listing.last  # the goal pose keeps clear of the objects of the last scene listed
        listed = last.objects if last is not None else None
        located, pose, where = self.locator.grounding(
            frame.header, frame.rgb.shape[:2], command, kept, listed, seen, self._no_goal_pose(now))  # fmt: skip
        space = f"3D in {located.header.frame_id!r}" if located is not None else ""
        said = f"grounded {len(kept)}/{len(findings)} in {latency:.1f} ms" + "".join(
            f"; {note}" for note in (missing, space, where) if note)  # fmt: skip
        return Outputs(detections, debug, self._status(said), tuple(findings), located, pose)

    def _no_goal_pose(self, now: float) -> str:
        """Why a put-command's goal pose may not be placed now ("" when it may): it keeps clear of the objects of the
        last listing, so it waits for a listing of the frame's objects, and a listing older than
        `scene_max_age_seconds` (a camera or objects that moved since) is not one to keep clear of."""
        if not self.lists_scenes:
            return ""
        last = self.listing.last
        if last is None or last.objects is None:
            return "no goal pose yet: the scene is being listed"
        age, most = now - last.started, self.config.scene_max_age_seconds
        if most <= 0 or 0 <= age <= most:
            return ""
        if age < 0:  # the clock went back (a bag played again): the listing is of another run
            return (f"no goal pose: the last listing is stamped {-age:.1f} s after this frame (the clock went back); "
                    "a new listing is due")  # fmt: skip
        return (f"no goal pose: the scene was last listed {age:.1f} s ago (scene_max_age_seconds {most:g}); "
                "a new listing is due")  # fmt: skip

    def replay_step(self, now: float) -> tuple[SceneStep, Outputs | None]:
        """`list_step` and `step` as an offline replay makes them (a bag, the demo): a listing due is made whole
        first, on the frame about to be grounded, so that its goal pose keeps clear of that frame's objects."""
        listed = self.list_step(now, whole=True) if self.grounding_due(now) else SceneStep()
        return listed, self.step(now)

    def list_step(self, now: float, whole: bool = False) -> SceneStep:
        """One step of the scene listing, which runs beside the grounding stream (the node calls this after each
        wake-up's grounding, so that a frame due to be grounded waits one step at most): while an instruction is
        grounded, a listing of the latest frame starts at most every `scene_every_seconds`; each call runs one of
        its steps (`whole`: all of them, as a bag replay does)."""
        listing = self.listing
        if not listing.under_way:
            frame = self.latest.peek()
            if not (self.phrases and self.lists_scenes and frame is not None
                    and listing.due(now, self.config.scene_every_seconds)):  # fmt: skip
                return SceneStep()
            listing.start(frame, self.grounder.scene_steps(frame.rgb), now)
        try:
            with self._model_lock:
                made = listing.advance(whole)
        except (ValueError, RuntimeError) as exc:  # one frame the model cannot take must not stop the stream
            return SceneStep(status=self._status(f"cannot list the scene: {exc}", error=True))
        if made is None:
            return SceneStep(under_way=True)
        self.counters.scenes += 1
        if made.objects is None:
            return SceneStep()
        kept = [(d.label, f"object_{i}", d) for i, d in enumerate(made.objects)]
        return SceneStep(conv.detection_array(self.msgs, made.frame.header, kept))

    # ---- space: depth, camera model and transforms --------------------------------------------------------
    def on_camera_info(self, msg) -> str | None:
        return self._said(self.locator.on_camera_info(msg))

    def on_depth(self, msg) -> str | None:
        return self._said(self.locator.on_depth(msg))

    def on_transforms(self, msg) -> str | None:
        """A tf2_msgs/TFMessage from /tf or /tf_static."""
        return self._said(self.locator.on_transforms(msg))

    def _said(self, problem: str | None) -> str | None:
        return self._status(problem, error=True) if problem else None

    # ---- services ---------------------------------------------------------------------------------
    def _frame_for(self, image_msg) -> Frame:
        """The request's image, or the latest camera frame when the request's image is empty."""
        if image_msg is not None and int(image_msg.height) > 0:
            return Frame(groundable(to_rgb(image_msg)), image_msg.header, time.time())
        frame = self.latest.peek()
        if frame is None:
            raise ImageError("no image in the request and no camera frame received yet")
        return frame

    def ground(self, request):
        """Ground service: (image?, expression, top_k) → the candidates at or above the threshold, best first;
        success false with the reason when there is none."""
        msgs = self.msgs
        header = request.image.header
        try:
            error = text_problem(request.expression, "expression")
            if error:
                raise ValueError(error)
            top_k = max(1, int(request.top_k))
            if top_k > MAX_TOP_K:
                raise ValueError(f"top_k {top_k} is larger than {MAX_TOP_K}")
            frame = self._frame_for(request.image)
            header = frame.header
            expression, threshold = request.expression.strip(), self.config.score_threshold
            with self._model_lock:
                finding = self.model.find(frame.rgb, expression, threshold, top_k)
            if not finding.found:
                raise ValueError(finding.reason)
            items = [(d.label, f"candidate_{i}", d) for i, d in enumerate(finding.detections)]
            note = words.read(expression).not_understood()
            said = "; ".join([f"{len(items)} candidate(s) at or above {threshold:g}", *filter(None, [note])])
            return msgs.GroundResponse(detections=conv.detection_array(msgs, header, items), success=True,
                                       message=said)  # fmt: skip
        except (ValueError, ImageError, RuntimeError) as exc:  # RuntimeError: what the model cannot take
            return msgs.GroundResponse(
                detections=conv.detection_array(msgs, header, []), success=False, message=str(exc)
            )

    def verify(self, request):
        """Verify service: instruction (or goal layout) against the request's image or the latest frame."""
        msgs = self.msgs
        try:
            frame = self._frame_for(request.image)
            pose, note = conv.pose_stamped(msgs, frame.header, None), ""
            seen = self.locator.view(frame.header) if self.locator.active else None  # its depth, before it is dropped
            with self._model_lock:
                if request.instruction.strip():
                    error = text_problem(request.instruction, "instruction")
                    if error:
                        raise ValueError(error)
                    command = parse_command(request.instruction)
                    verdict = verify_command(self.grounder, frame.rgb, command)
                    checks = [self._check(verdict)]
                    if command.action == "put":
                        pose, note = self._goal_pose_in(frame, command, seen)
                else:
                    layout = conv.layout_of(request.goal_layout).validate(self.model.max_objects)
                    verdict, ious = verify_layout(self.grounder, frame.rgb, layout)
                    checks = [self._object_check(o, iou) for o, iou in zip(layout.objects, ious)]
            return msgs.VerifyResponse(satisfied=verdict.satisfied, score=float(verdict.score), relations=checks,
                                       goal_pose=pose, success=True,
                                       message="; ".join(filter(None, [verdict.reason, note])))  # fmt: skip
        except (ValueError, ImageError, RuntimeError) as exc:
            return msgs.VerifyResponse(satisfied=False, score=0.0, relations=[], success=False, message=str(exc),
                                       goal_pose=conv.pose_stamped(msgs, request.image.header, None))  # fmt: skip

    def _goal_pose_in(self, frame: Frame, command: Command, seen) -> tuple[object, str]:
        """Where a put-command's target goes in `frame` (PoseStamped; frame_id "": none) and why there is none;
        planned only where depth can place it (planning grounds the referents again)."""
        if seen is None:
            return conv.pose_stamped(self.msgs, frame.header, None), "no goal pose: no depth frame received"
        try:
            planned = plan(frame.rgb, command, self.grounder)
        except PlanningError as exc:
            return conv.pose_stamped(self.msgs, frame.header, None), f"no goal pose: {exc}"
        return self.locator.plan_pose(frame.header, planned, seen)

    def _check(self, verdict: Verdict):
        return self.msgs.RelationCheck(
            target=verdict.target, relation=verdict.relation or "", anchors=list(verdict.anchors),
            verdict=VERDICT_CODES[verdict.status], score=float(verdict.score), reason=verdict.reason,
        )  # fmt: skip

    def _object_check(self, obj: LayoutObject, iou: float):
        status = 0 if iou >= 0.5 else 1
        return self.msgs.RelationCheck(target=obj.label, relation="at", anchors=[], verdict=status, score=float(iou),
                                       reason=f"IoU {iou:.2f} with its goal box")  # fmt: skip

    # ---- the imagine action ---------------------------------------------------------------------------
    def imagine(
        self,
        goal,
        feedback: Callable[[str, float], None] = lambda stage, progress: None,
        cancelled: Callable[[], bool] = lambda: False,
    ):
        """Instruction and/or layout → goal layout → imagined image → grounded back → compared with the
        live frame. Raises Cancelled between stages when `cancelled()` turns true."""
        msgs = self.msgs
        frame = self.latest.peek()
        header = frame.header if frame is not None else conv.header(msgs, time.time(), "")
        try:
            if not math.isfinite(float(goal.guidance)):
                raise ValueError("guidance must be a finite number")
            seed = int(goal.seed) if int(goal.seed) >= 0 else random.getrandbits(62)
            seen = self.locator.view(header) if frame is not None else None  # its depth, kept for the goal pose
            guidance = float(goal.guidance) if float(goal.guidance) > 0 else self.config.guidance
            result = imagine_goal(
                self.model, self._goal(goal), frame.rgb if frame is not None else None, seed=seed, guidance=guidance,
                grounder=self.grounder, progress=feedback, cancelled=cancelled, guard=self._model_lock,
                cycle_threshold=self.config.cycle_threshold, decoder_map=self.config.decoder_map,
            )  # fmt: skip
            layout, cycle = result.goal_layout, result.cycle
            pose, where = self.locator.plan_pose(header, result.plan, seen)
            notes = "".join(f"; {note}" for note in (*(result.plan.notes if result.plan is not None else ()), where)
                            if note)  # fmt: skip
            check = "passed" if result.cycle_passed else "failed: the imagined scene is not the goal"
            notes = f"; cycle check {check} (IoU {cycle.mean_iou:.2f} vs {self.config.cycle_threshold:.2f})" + notes
            return msgs.ImagineResult(
                image=conv.image_message(msgs, result.image, header),
                goal_layout=conv.layout_message(msgs, layout, header),
                grounded_layout=conv.layout_message(msgs, cycle.grounded, header), cycle_iou=cycle.mean_iou,
                object_iou=msgs.floats(cycle.ious), satisfied_now=result.satisfied_now, goal_pose=pose, success=True,
                message=f"imagined {len(layout.objects)} object(s) with seed {seed}, guidance {_guidance(guidance)}"
                + notes,
            )  # fmt: skip
        except (ValueError, ImageError, PlanningError, RuntimeError) as exc:
            return self._imagine_failure(header, str(exc))

    def imagine_failure(self, message: str):
        frame = self.latest.peek()
        return self._imagine_failure(frame.header if frame else conv.header(self.msgs, time.time(), ""), message)

    def _imagine_failure(self, header, message: str):
        msgs = self.msgs
        empty = conv.empty_layout(msgs, header)
        return msgs.ImagineResult(
            image=conv.empty_image(msgs, header), goal_layout=empty, grounded_layout=empty, cycle_iou=0.0,
            object_iou=msgs.floats([]), satisfied_now=False, goal_pose=conv.pose_stamped(msgs, header, None),
            success=False, message=message,
        )  # fmt: skip

    def _goal(self, goal) -> Command | Layout:
        """The goal of an Imagine request: its instruction's command, else its layout (validated)."""
        if goal.instruction.strip():
            error = text_problem(goal.instruction, "instruction")
            if error:
                raise ValueError(error)
            return parse_command(goal.instruction)
        if not goal.layout.objects:
            raise ValueError("the goal has neither an instruction nor a layout")
        return conv.layout_of(goal.layout).validate(self.model.max_objects)

    # ---- status -----------------------------------------------------------------------------------------
    def _status(self, text: str, error: bool = False) -> str:
        self.counters.last_status = text
        if error:
            self.counters.errors = (self.counters.errors + [text])[-20:]
        return text

    def diagnostics(self, now: float, name: str = "echogen_ros: grounding"):
        msgs, c, listed = self.msgs, self.counters, self.listing.last
        level = msgs.byte(1 if c.errors and c.errors[-1] == c.last_status else 0)  # WARN after a bad input
        values = {"frames": c.frames, "skipped_frames": c.skipped, "replaced_frames": self.latest.replaced,
                  "groundings": c.groundings, "last_latency_ms": round(c.last_latency_ms, 2),
                  "scenes_listed": c.scenes, "last_scene_ms": round(listed.ms, 2) if listed else 0,
                  "instruction": self.instruction or "", "not_found": c.not_found,
                  "depth": self.locator.state.depth, "frame_3d": self.locator.state.frame}  # fmt: skip
        pairs = [msgs.KeyValue(key=k, value=str(v)) for k, v in values.items()]
        status = msgs.DiagnosticStatus(level=level, name=name, message=c.last_status, hardware_id="echogen",
                                       values=pairs)  # fmt: skip
        return msgs.DiagnosticArray(header=conv.header(msgs, now, ""), status=[status])


def not_found(findings) -> str:
    """What a grounding did not find and why, one clause per phrase ("" when it found everything)."""
    return "; ".join(f"not found {f.phrase!r}: {f.reason}" for f in findings if not f.found)
