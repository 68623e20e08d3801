"""`ros2 run echogen_ros live_bench`: measure a running echogen node from outside, as a planner sees it.

Latency is camera stamp → detections received (same machine, one clock); RSS and CPU come from the node's
/proc entry once a second; status lines that report a skipped frame or a failed grounding count as errors.
Start the system first, e.g. `ros2 launch echogen_ros bringup.launch.py use_sim_camera:=true sim_fps:=30`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import rclpy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.utilities import remove_ros_args
from std_msgs.msg import String
from vision_msgs.msg import Detection2DArray

from echogen_ros.live_stats import LiveRun, find_process, process_sample

ERROR_PREFIXES = ("skipped", "cannot")


class LiveBench(Node):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__("echogen_live_bench")
        self.args, self.run = args, LiveRun(warmup=args.warmup)
        self.pid = find_process("echogen_node")
        if self.pid is None:
            raise SystemExit("no echogen_node process found: start the node first (see --help)")
        self.started = time.monotonic()
        self.create_subscription(Detection2DArray, "detections", self._on_detections, 50)
        self.create_subscription(String, "status", self._on_status, 100)
        self.instruction = self.create_publisher(String, "instruction", 10)
        self.create_timer(1.0, self._sample)
        if args.every_frames is not None:
            self._set_every_frames(args.every_frames)

    def _set_every_frames(self, frames: int) -> None:
        client = self.create_client(SetParameters, f"{self.args.node}/set_parameters")
        if not client.wait_for_service(timeout_sec=10):
            raise SystemExit(f"{self.args.node}/set_parameters is not available")
        value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=frames)
        client.call_async(SetParameters.Request(parameters=[Parameter(name="grounding_every_frames", value=value)]))

    def _on_detections(self, msg: Detection2DArray) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.run.latencies.append((time.monotonic(), (time.time() - stamp) * 1000))

    def _on_status(self, msg: String) -> None:
        if msg.data.startswith(ERROR_PREFIXES):
            self.run.errors.append(msg.data)

    def _sample(self) -> None:
        self.run.samples.append((time.monotonic(), *process_sample(self.pid)))
        if time.monotonic() - self.started < 5:
            self.instruction.publish(String(data=self.args.instruction))

    def done(self) -> bool:
        return time.monotonic() - self.started >= self.args.seconds


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="live_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to measure")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before RSS growth is measured")
    parser.add_argument("--instruction", default="the cup", help="published on 'instruction' at the start")
    parser.add_argument("--every-frames", type=int, default=None, help="set grounding_every_frames first")
    parser.add_argument("--node", default="/echogen", help="the node's name (for parameters)")
    parser.add_argument("--out", type=Path, default=None, help="also write the summary JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    rclpy.init(args=argv)
    args = parse(remove_ros_args(argv)[1:])
    bench = LiveBench(args)
    try:
        while rclpy.ok() and not bench.done():
            rclpy.spin_once(bench, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    summary = {**bench.run.summary(), "first_errors": bench.run.errors[:3]}
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    bench.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
