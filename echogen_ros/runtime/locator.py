"""What the node knows of space, ROS-free: the camera's intrinsics (CameraInfo), recent depth frames and the
transforms received; from them, grounded boxes as vision_msgs/Detection3DArray and a goal box as a
geometry_msgs/PoseStamped on the surface, in the target frame when a transform reaches it (else the camera's
optical frame: the header always names the frame used). Without usable depth there is no 3D output, and the
note says why: never a 3D box that depth does not support."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from echogen_ros.domain.camera import Pinhole
from echogen_ros.planning.commands import Command, PlanningError
from echogen_ros.planning.planner import Plan, others_in_scene, place_target
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.depth import DepthFrame, DepthFrames, seconds, to_metres
from echogen_ros.runtime.images import ImageError
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.runtime.space import DepthRange, measure, surface_point
from echogen_ros.runtime.transforms import TransformTree


@dataclass(frozen=True)
class SpaceConfig:
    target_frame: str = ""  # "": the camera's optical frame
    sync_tolerance: float = 0.05  # seconds between a colour frame and the depth frame paired with it
    depth_near: float = 0.1  # metres: nearer readings are none
    depth_far: float = 10.0  # metres: farther readings are none

    def __post_init__(self) -> None:
        if not (self.sync_tolerance >= 0 and 0 <= self.depth_near < self.depth_far):
            raise ValueError(f"space settings need sync_tolerance >= 0 and 0 <= depth_near < depth_far, got "
                             f"{self.sync_tolerance}, {self.depth_near}, {self.depth_far}")  # fmt: skip


@dataclass(frozen=True)
class View:
    depth: np.ndarray  # metres
    camera: Pinhole
    to_target: np.ndarray | None  # optical → target frame; None: stay in the optical frame
    header: object  # the colour frame's stamp, the frame the outputs are in


@dataclass(frozen=True)
class SpaceState:
    """The last grounding's 3D state, for status and /diagnostics."""

    depth: str = "none received: 2D only"  # "paired", or why not ("not paired: ...")
    frame: str = ""  # the frame of the 3D outputs ("" none), and why it is not the target frame


class Locator:
    def __init__(self, msgs: MessageTypes, config: SpaceConfig | None = None) -> None:
        self.msgs, self.config = msgs, config or SpaceConfig()
        self.depths, self.tree = DepthFrames(), TransformTree()
        self.camera: Pinhole | None = None
        self.state = SpaceState()

    @property
    def active(self) -> bool:
        """Whether depth has been received (3D outputs are made from then on)."""
        return self.depths.nearest(0.0, float("inf"))[0] is not None

    def on_camera_info(self, msg) -> str | None:
        try:
            self.camera = Pinhole.from_k(msg.k, int(msg.width), int(msg.height))
        except ValueError as exc:
            return f"skipped camera_info: {exc}"
        return None

    def on_depth(self, msg) -> str | None:
        try:
            self.depths.put(DepthFrame(to_metres(msg), msg.header))
        except ImageError as exc:
            return f"skipped depth frame: {exc}"
        return None

    def on_transforms(self, msg) -> str | None:
        """A tf2_msgs/TFMessage from /tf or /tf_static."""
        try:
            for stamped in msg.transforms:
                self.tree.add(stamped)
        except ValueError as exc:
            return f"skipped transform: {exc}"
        return None

    def view(self, header) -> tuple[View | None, str]:
        """The depth paired with the colour frame `header`, the camera, and the way to the target frame."""
        if self.camera is None:
            return None, "no camera_info received"
        tolerance = self.config.sync_tolerance
        paired, why = self.depths.nearest(seconds(header), tolerance, wait=tolerance)  # its depth may be on its way
        if paired is None:
            return None, why
        frame, target = str(header.frame_id), self.config.target_frame
        to_target = self.tree.lookup(target, frame) if target and target != frame else None
        note = f"no transform from {frame!r} to {target!r} yet: in {frame!r}" if target and to_target is None else ""
        stamp = conv.copy_header(self.msgs, header).stamp
        used = self.msgs.Header(stamp=stamp, frame_id=target if to_target is not None else frame)
        return View(paired.metres, self.camera, to_target, used), note

    def locate(self, header, items: Sequence[tuple[str, str, object]], seen=None):
        """(Detection3DArray of the (class_id, id, Detection) that depth places, or None, the note); `seen` as
        for `goal_pose`."""
        view, note = seen or self.view(header)
        if view is None:
            self.state = SpaceState(f"not paired: {note}: 2D only")
            return None, f"2D only: {note}"
        self.state = SpaceState("paired", "; ".join(filter(None, [str(view.header.frame_id), note])))
        limits = DepthRange(self.config.depth_near, self.config.depth_far)
        placed, notes = [], [note] if note else []
        for class_id, track_id, found in items:
            measured = measure(found.box, view.depth, view.camera, limits, str(header.frame_id))
            if measured.box is None:
                notes.append(f"{class_id!r} 2D only: {measured.reason}")
                continue
            box = measured.box
            if view.to_target is not None:
                box = box.transformed(view.to_target, view.header.frame_id)
            placed.append((class_id, track_id, float(found.score), box))
        return conv.detection_3d_array(self.msgs, view.header, placed), "; ".join(notes)

    def goal_pose(self, header, goal_box: Sequence[float], target_box: Sequence[float], seen=None):
        """(PoseStamped where the target, now at `target_box`, stands when moved to image box `goal_box`: on the
        surface there, in the target frame; frame_id "" when depth cannot say, the note). `seen`: the frame's
        `view(header)` taken before (a long job outlives the depth frames kept)."""
        view, note = seen or self.view(header)
        if view is None:
            return conv.pose_stamped(self.msgs, header, None), f"no goal pose: {note}"
        limits = DepthRange(self.config.depth_near, self.config.depth_far)
        standing = measure(target_box, view.depth, view.camera, limits)
        if standing.box is None:
            return conv.pose_stamped(self.msgs, header, None), f"no goal pose: the target: {standing.reason}"
        point, why = surface_point(goal_box, standing.box.size[2], view.depth, view.camera, limits, target_box)
        if point is None:
            return conv.pose_stamped(self.msgs, header, None), f"no goal pose: {why}"
        if view.to_target is not None:
            point = (view.to_target @ np.append(point, 1.0))[:3]
        return conv.pose_stamped(self.msgs, view.header, point), note

    def grounding(
        self, header, size: tuple[int, int], command: Command | None, kept, listed, seen=None, no_goal: str = ""
    ):
        """(detections_3d, goal_pose, why depth placed less than asked) for a grounding of a (height, width)
        frame: `kept` its (class_id, role, Detection) found, `listed` the scene's objects (None: not listed),
        `seen` as for `goal_pose`. The goal pose is a put-command's whose referents were all found, and none
        where `no_goal` says why not (the scene is still being listed, or was listed too long ago: a goal pose
        blind to the other objects may land on one). Nothing and no note before any depth frame arrives: a camera
        without depth stays 2D and quiet."""
        if not self.active:
            return None, None, ""
        seen = seen or self.view(header)
        located, note = self.locate(header, kept, seen)
        roles = {role: d for _, role, d in kept}
        if command is None or command.action != "put" or len(roles) < 1 + len(command.anchors):
            return located, None, note  # a referent not found: the grounding says why
        if no_goal:
            return located, None, "; ".join(filter(None, [note, no_goal]))
        grounded = [roles["target"], *(roles[f"anchor_{i}"] for i in range(len(command.anchors)))]
        height, width = size
        try:
            goal = place_target(command, grounded, others_in_scene(command, grounded, listed), width, height)
        except PlanningError as exc:
            return located, None, "; ".join(filter(None, [note, f"no goal pose: {exc}"]))
        pose, why = self.goal_pose(header, goal, grounded[0].box, seen)
        return located, pose if pose.header.frame_id else None, "; ".join(filter(None, [note, why]))

    def plan_pose(self, header, planned: Plan | None, seen=None):
        """(the goal pose of a plan made in the frame of `header`, frame_id "" for none; why there is none);
        `seen` as for `goal_pose`."""
        if planned is None or planned.goal_box is None:
            return conv.pose_stamped(self.msgs, header, None), ""
        return self.goal_pose(header, planned.goal_box, planned.target.box, seen)
