"""`echogen bag`: the runtime over a recorded rosbag2, written to a new MCAP bag (see echogen_ros.bag)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from echogen_ros.cli.args import bounded_int, probability
from echogen_ros.cli.model import add_backend
from echogen_ros.params import BY_NAME, validate


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bag", help="ground (and imagine) over a rosbag2; write a new MCAP bag")
    b.add_argument("--in", dest="source", type=Path, required=True, help="input rosbag2 (folder, .mcap or .db3)")
    b.add_argument("--out", dest="target", type=Path, required=True, help="output bag folder (must not exist)")
    b.add_argument("--image-topic", default=None, help="default: the bag's first Image/CompressedImage topic")
    b.add_argument("--instruction-topic", default=None, help="default: a std_msgs/String topic named *instruction*")
    b.add_argument("--instruction", default=None, help="an instruction in force from the bag's first message")
    b.add_argument("--namespace", default="/echogen",
                   help="output topics' prefix; the input's messages on these output topics are replaced")  # fmt: skip
    b.add_argument("--model", type=Path, default=None)
    b.add_argument("--every-frames", type=bounded_int(1, 100000), default=1, help="ground every N frames")
    b.add_argument("--score-threshold", type=probability, default=BY_NAME["score_threshold"].default,
                   help="probability a referent must reach to be published (the node's score_threshold)")  # fmt: skip
    b.add_argument("--depth-topic", default=None,
                   help="depth Image registered to the frames (default: the first Image topic named *depth*); with "
                        "the bag's CameraInfo and /tf, /tf_static: detections_3d and goal_pose")  # fmt: skip
    b.add_argument("--target-frame", default="", help="frame of the 3D outputs (default: the camera's optical)")
    b.add_argument("--distro", choices=("humble", "jazzy"), default="humble")
    add_backend(b)
    b.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from echogen_ros.bag import process_bag
    from echogen_ros.cli.model import load_model
    from echogen_ros.runtime.core import RuntimeConfig

    problem = validate("target_frame", args.target_frame)
    if problem:
        raise ValueError(problem)
    model = load_model(args.model, args.backend)
    config = RuntimeConfig(every_frames=args.every_frames, every_seconds=0.0, score_threshold=args.score_threshold)
    config = config.changed(target_frame=args.target_frame)
    bar: tqdm | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:  # created on the first message, so argument errors print one clean line
            bar = tqdm(total=total, unit="msg", dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        summary = process_bag(args.source, args.target, model, args.image_topic, args.instruction_topic,
                              args.instruction, args.namespace, config, progress, args.distro,
                              args.depth_topic)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    for problem in summary.skipped:
        print(f"skipped: {problem}")
    if summary.replaced:
        print(f"replaced: {summary.replaced} messages on the input's {args.namespace}/* output topics (not copied)")
    print(json.dumps({"out": str(args.target), "messages": summary.messages, "frames": summary.frames,
                      "groundings": summary.groundings, "imagined": summary.imagined,
                      "replaced": summary.replaced, "skipped": len(summary.skipped)}))  # fmt: skip
    return 0
