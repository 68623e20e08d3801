"""The `main()` both ROS executables share: init, spin, clean shutdown on Ctrl-C (needs rclpy)."""

from __future__ import annotations

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor


def run(make_node: Callable, args: list[str] | None = None, multithreaded: bool = False, start=None) -> None:
    """Create the node, call `start(node)` (e.g. lifecycle transitions), spin until shutdown."""
    rclpy.init(args=args)
    node = make_node()
    executor = MultiThreadedExecutor() if multithreaded else SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if start is not None:
            start(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
