"""The simulated camera: tabletop-world frames, their CameraInfo and ground truth, as ROS messages."""

from __future__ import annotations

import numpy as np

from echogen_ros.model.layout import Layout, LayoutObject
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.messages import MessageTypes
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
    ) -> None:
        if not (16 <= width <= 8192 and 16 <= height <= 8192):
            raise ValueError(f"sim camera size {width}x{height} is outside 16..8192")
        if frames_per_scene < 1:
            raise ValueError("frames_per_scene must be >= 1")
        self.msgs, self.width, self.height = msgs, width, height
        self.seed, self.split, self.frames_per_scene, self.frame_id = seed, split, frames_per_scene, frame_id
        self.count = 0
        self._scene: tuple[int, WorldSample, np.ndarray] | None = None

    def scene(self, index: int) -> tuple[WorldSample, np.ndarray]:
        if self._scene is None or self._scene[0] != index:
            sample = world_sample(self.seed, index, self.split)
            self._scene = (index, sample, sample.image(self.width, self.height))
        return self._scene[1], self._scene[2]

    def next(self, seconds: float):
        """(sensor_msgs/Image, sensor_msgs/CameraInfo, the world sample shown) for the next frame."""
        sample, rgb = self.scene(self.count // self.frames_per_scene)
        self.count += 1
        header = conv.header(self.msgs, seconds, self.frame_id)
        return conv.image_message(self.msgs, rgb, header), self.camera_info(header), sample

    def ground_truth(self, sample: WorldSample, header):
        """echogen_ros/Layout of what frame `header` shows: every object as "colour category" and its box."""
        boxes = sample.boxes(self.width, self.height)
        objects = tuple(LayoutObject(label, b) for label, b in zip(sample.labels(), boxes))
        return conv.layout_message(self.msgs, Layout(self.width, self.height, objects, sample.caption), header)

    def camera_info(self, header):
        m, w, h = self.msgs, self.width, self.height
        f = float(w)  # about 53° horizontal field of view
        k = np.array([f, 0, w / 2, 0, f, h / 2, 0, 0, 1], dtype=np.float64)
        p = np.array([f, 0, w / 2, 0, 0, f, h / 2, 0, 0, 0, 1, 0], dtype=np.float64)
        roi = m.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return m.CameraInfo(header=conv.copy_header(m, header), height=h, width=w, distortion_model="plumb_bob",
                            d=m.floats([0.0] * 5), k=k, r=np.eye(3).ravel(), p=p, binning_x=0, binning_y=0,
                            roi=roi)  # fmt: skip
