"""The simulated camera: tabletop-world frames, their depth, CameraInfo (the world camera's K and P), the
camera → table transform for /tf_static, and ground truth, as ROS messages."""

from __future__ import annotations

import numpy as np

from echogen_ros.model.layout import Layout, LayoutObject
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.messages import MessageTypes
from echogen_ros.world.camera import CAMERA_TO_TABLE, pinhole
from echogen_ros.world.dataset import WorldSample, world_sample


class SimCamera:
    """Frame k shows world scene (k // frames_per_scene) of `split`; stamps come from the caller."""

    def __init__(
        self,
        msgs: MessageTypes,
        width: int = 640,
        height: int = 480,
        seed: int = 0,
        split: str = "test",
        frames_per_scene: int = 30,
        frame_id: str = "sim_camera_optical",
        table_frame: str = "table",
    ) -> None:
        if not (16 <= width <= 8192 and 16 <= height <= 8192):
            raise ValueError(f"sim camera size {width}x{height} is outside 16..8192")
        if frames_per_scene < 1:
            raise ValueError("frames_per_scene must be >= 1")
        self.msgs, self.width, self.height = msgs, width, height
        self.seed, self.split, self.frames_per_scene, self.frame_id = seed, split, frames_per_scene, frame_id
        self.table_frame = table_frame
        self.count = 0
        self._scene: tuple[int, WorldSample, np.ndarray, np.ndarray] | None = None

    def scene(self, index: int) -> tuple[WorldSample, np.ndarray, np.ndarray]:
        """(the sample, its RGB frame, its depth in metres) of scene `index`."""
        if self._scene is None or self._scene[0] != index:
            sample = world_sample(self.seed, index, self.split)
            self._scene = (index, sample, sample.image(self.width, self.height), sample.depth(self.width, self.height))
        return self._scene[1], self._scene[2], self._scene[3]

    def next(self, seconds: float):
        """(sensor_msgs/Image, sensor_msgs/CameraInfo, the world sample shown) for the next frame."""
        sample, rgb, _ = self.scene(self.count // self.frames_per_scene)
        self.count += 1
        header = conv.header(self.msgs, seconds, self.frame_id)
        return conv.image_message(self.msgs, rgb, header), self.camera_info(header), sample

    def depth(self, header, encoding: str = "32FC1"):
        """The depth Image (32FC1 metres or 16UC1 millimetres) of the last frame `next` gave, with its `header`:
        exact to the frame (world/camera.py), registered to it (same size and K)."""
        _, _, depth = self.scene(max(self.count - 1, 0) // self.frames_per_scene)
        return conv.depth_message(self.msgs, depth, header, encoding)

    def camera_to_table(self, seconds: float):
        """tf2_msgs/TFMessage for /tf_static: the camera's optical frame in the table frame (world/camera.py)."""
        header = conv.header(self.msgs, seconds, self.table_frame)
        stamped = conv.transform_stamped(self.msgs, header, self.frame_id, CAMERA_TO_TABLE)
        return self.msgs.TFMessage(transforms=[stamped])

    def ground_truth(self, sample: WorldSample, header):
        """echogen_ros/Layout of what frame `header` shows: every object as "colour category" and its box."""
        boxes = sample.boxes(self.width, self.height)
        objects = tuple(LayoutObject(label, b) for label, b in zip(sample.labels(), boxes))
        return conv.layout_message(self.msgs, Layout(self.width, self.height, objects, sample.caption), header)

    def camera_info(self, header):
        """The world camera's intrinsics (53° horizontal field of view, no distortion): K, and P = [K | 0]."""
        m, w, h = self.msgs, self.width, self.height
        k = pinhole(w, h).k
        p = np.hstack([k, np.zeros((3, 1))]).ravel()
        k = k.ravel()
        roi = m.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return m.CameraInfo(header=conv.copy_header(m, header), height=h, width=w, distortion_model="plumb_bob",
                            d=m.floats([0.0] * 5), k=k, r=np.eye(3).ravel(), p=p, binning_x=0, binning_y=0,
                            roi=roi)  # fmt: skip
