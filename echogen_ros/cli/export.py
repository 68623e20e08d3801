"""`echogen export`: the grounding path to ONNX with a JSON sidecar, checked against torch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="export grounding to ONNX (opset 18, dynamic batch) + sidecar JSON")
    e.add_argument("--model", type=Path, default=None, help="model directory (default: the embedded model)")
    e.add_argument(
        "--out", type=Path, required=True, help="output directory (use <model>/onnx to ship it with the model)"
    )
    e.add_argument("--fp16", action="store_true", help="mark engines built from this graph as FP16 (TensorRT)")
    e.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from echogen_ros.cli.model import load_model
    from echogen_ros.engines.export import export_grounding
    from echogen_ros.engines.onnxruntime_engine import OnnxRuntimeGrounder
    from echogen_ros.engines.parity import parity

    model = load_model(args.model)
    path = export_grounding(model, args.out, fp16=args.fp16)
    report = parity(model, OnnxRuntimeGrounder(path, ["CPUExecutionProvider"]), scenes=5)
    print(json.dumps({"onnx": str(path), "sidecar": str(args.out / "grounding.json"), **report}))
    if report["token_mismatches"]:
        raise ValueError(f"exported graph disagrees with torch on {report['token_mismatches']} box token(s)")
    return 0
