"""A pinhole camera and the 3D boxes it measures: the one meaning of "this image box at that depth, in metres",
used by the world (its truth) and the runtime (what depth says).

Image boxes are in edge coordinates, as every box here and COCO's: pixel i spans [i, i + 1), so a box
(x1, y1, x2, y2) with x2 exclusive covers [x1, x2]. K follows ROS's CameraInfo (and OpenCV): pixel i's centre
is at coordinate i, so an edge coordinate e is e - 0.5 there. The optical frame is ROS's: x right, y down,
z forward (along the optical axis).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from echogen_ros.domain.relations import Truth, relation_truth

Vector3 = tuple[float, float, float]


@dataclass(frozen=True)
class Pinhole:
    """Intrinsics of an undistorted (rectified) camera of width × height pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0 and np.isfinite([self.fx, self.fy, self.cx, self.cy]).all()):
            raise ValueError(f"a camera needs finite focal lengths > 0, got fx {self.fx}, fy {self.fy}")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"a camera needs a size, got {self.width}x{self.height}")

    @classmethod
    def from_k(cls, k: Sequence[float], width: int, height: int) -> Pinhole:
        """From a row-major 3×3 K (CameraInfo.k, or a nested list)."""
        m = np.asarray(k, dtype=np.float64).reshape(3, 3)
        if m[0, 1] != 0 or m[1, 0] != 0 or m[2, 0] != 0 or m[2, 1] != 0 or m[2, 2] != 1:
            raise ValueError(f"K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {m.tolist()}")
        return cls(float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2]), int(width), int(height))

    @property
    def k(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def point(self, u: float, v: float, z: float) -> np.ndarray:
        """The optical-frame point at depth `z` seen at edge coordinates (u, v)."""
        return np.array([(u - 0.5 - self.cx) * z / self.fx, (v - 0.5 - self.cy) * z / self.fy, z])

    def box_at_depth(self, box: Sequence[float], near: float, far: float, frame: str = "") -> Box3D:
        """The camera-aligned 3D box whose face at depth `near` the image box shows, reaching back to `far`
        (the surface it stands on): what a top face seen straight on is in metres."""
        x1, y1, x2, y2 = (float(b) for b in box)
        low, high = self.point(x1, y1, near), self.point(x2, y2, near)
        center = ((low[0] + high[0]) / 2, (low[1] + high[1]) / 2, (near + far) / 2)
        return Box3D(center, (high[0] - low[0], high[1] - low[1], far - near), frame)


@dataclass(frozen=True)
class Box3D:
    """An axis-aligned box in `frame`, metres: centre and size along the frame's x, y and z."""

    center: Vector3
    size: Vector3
    frame: str = ""

    def transformed(self, matrix: np.ndarray, frame: str) -> Box3D:
        """The box in `frame`, given the 4×4 transform taking points of this box's frame into it: the centre
        moved, the size that of the box's axis-aligned bounds there (exact when the rotation maps axes onto
        axes, as a camera looking straight down at a table does)."""
        rotation, translation = matrix[:3, :3], matrix[:3, 3]
        center = rotation @ np.asarray(self.center) + translation
        size = np.abs(rotation) @ np.asarray(self.size)
        return Box3D(_floats(center), _floats(size), frame)

    def standing_at(self, point: Sequence[float]) -> Box3D:
        """The box moved so that its bottom face's centre is at `point` (a frame whose z is up: a table's)."""
        x, y, z = (float(v) for v in point)
        return Box3D((x, y, z + self.size[2] / 2), self.size, self.frame)

    def top_view(self) -> tuple[float, float, float, float]:
        """The box seen from above in a frame whose z is up and y points up the view (the world's table frame):
        an image-like box (x right, y down, so -y), in metres."""
        (x, y, _), (dx, dy, _) = self.center, self.size
        return (x - dx / 2, -(y + dy / 2), x + dx / 2, -(y - dy / 2))

    def as_dict(self, digits: int = 4) -> dict:
        """{center, size, frame} rounded to `digits` decimals of a metre (JSON outputs)."""
        rounded = [[round(float(v), digits) + 0.0 for v in vs] for vs in (self.center, self.size)]  # no -0.0
        return {"center": rounded[0], "size": rounded[1], "frame": self.frame}


def _floats(values: np.ndarray) -> Vector3:
    x, y, z = (float(v) for v in values)
    return (x, y, z)


def relation_in_space(relation: str, target: Box3D, anchors: Sequence[Box3D], extent: float) -> Truth:
    """Whether `relation` ("left of", ..., "on") holds of boxes on a table seen from above (`top_view`): the
    relations' one meaning (domain.relations) on the table plane, `extent` metres standing for the image height
    (the table's extent in view: 0.6 m for the world's camera)."""
    return relation_truth(relation, target.top_view(), [a.top_view() for a in anchors], extent)
