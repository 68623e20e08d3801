"""The `main()` both ROS executables share: init, spin, clean shutdown on Ctrl-C or SIGTERM (needs rclpy)."""

from __future__ import annotations

import ctypes
import signal
import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (what `ros2 launch` escalates to) ends the spin as Ctrl-C does


def _terminate_with_parent() -> None:
    """Ask Linux for SIGTERM when the parent dies: Humble's `ros2 launch` exits on SIGTERM without stopping
    its processes, which would leave this node running with nobody to stop it."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


def run(make_node: Callable, args: list[str] | None = None, multithreaded: bool = False, start=None,
        stop=None) -> None:  # fmt: skip
    """Create the node, call `start(node)` (e.g. lifecycle transitions), spin until Ctrl-C or SIGTERM,
    then call `stop(node)` while the context is still valid, and shut down."""
    # rclpy's own handlers would shut the context down before `stop` could run: handle the signals here
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, _interrupt)
    _terminate_with_parent()
    node = make_node()
    # four threads: one can wait on the model while another answers a cancel or a parameter request
    executor = MultiThreadedExecutor(num_threads=4) if multithreaded else SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if start is not None:
            start(node)
        while rclpy.ok():  # wake at least every 0.25 s: a signal is handled only between waits
            executor.spin_once(timeout_sec=0.25)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        executor.shutdown()
        if stop is not None:
            stop(node)
        node.destroy_node()
        rclpy.try_shutdown()
