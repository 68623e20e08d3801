"""The transforms received on /tf_static and /tf, composed with transforms3d (ROS-free, as tf2's Buffer but
without time: each frame keeps the latest transform to its parent, as a static or slowly moving camera needs)."""

from __future__ import annotations

import threading

import numpy as np
from transforms3d.affines import compose
from transforms3d.quaternions import mat2quat, quat2mat


def matrix_of(transform) -> np.ndarray:
    """geometry_msgs/Transform → 4×4 matrix taking child-frame points into the parent frame."""
    t, q = transform.translation, transform.rotation
    rotation = quat2mat([float(q.w), float(q.x), float(q.y), float(q.z)])  # transforms3d: w first
    return compose([float(t.x), float(t.y), float(t.z)], rotation, np.ones(3))


def quaternion_xyzw(matrix: np.ndarray) -> tuple[float, float, float, float]:
    """The rotation of a 4×4 (or 3×3) matrix as ROS's (x, y, z, w)."""
    w, x, y, z = mat2quat(np.asarray(matrix)[:3, :3])
    return float(x), float(y), float(z), float(w)


class TransformTree:
    """Frames and the latest transform from each to its parent; `lookup` composes a path through the tree."""

    def __init__(self) -> None:
        self._parents: dict[str, tuple[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    def add(self, stamped) -> None:
        """One geometry_msgs/TransformStamped (from a tf2_msgs/TFMessage's `transforms`)."""
        parent, child = str(stamped.header.frame_id).lstrip("/"), str(stamped.child_frame_id).lstrip("/")
        if not parent or not child or parent == child:
            raise ValueError(f"a transform needs two different frames, got {parent!r} → {child!r}")
        matrix = matrix_of(stamped.transform)
        if not np.isfinite(matrix).all():
            raise ValueError(f"the transform {parent!r} → {child!r} is not finite")
        with self._lock:
            self._parents[child] = (parent, matrix)

    def lookup(self, target: str, source: str) -> np.ndarray | None:
        """The 4×4 matrix taking `source`-frame points into `target`, or None when no path joins them."""
        target, source = target.lstrip("/"), source.lstrip("/")
        with self._lock:
            up_source, up_target = self._chain(source), self._chain(target)
        common = next((frame for frame in up_source if frame in up_target), None)
        if common is None:
            return None
        return np.linalg.inv(up_target[common]) @ up_source[common]

    def _chain(self, frame: str) -> dict[str, np.ndarray]:
        """Each ancestor of `frame` (itself first) → the matrix taking `frame`'s points into it."""
        chain, matrix = {frame: np.eye(4)}, np.eye(4)
        while frame in self._parents and len(chain) <= len(self._parents):
            frame, step = self._parents[frame]
            if frame in chain:  # a loop in what was sent: stop at it
                break
            matrix = step @ matrix
            chain[frame] = matrix
        return chain
