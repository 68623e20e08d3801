"""`echogen export`: the grounding path to ONNX (opset 18, dynamic batch and prompt length) with a JSON
sidecar describing inputs, outputs, pre-processing and the token scheme."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch

from echogen_ros.engines.graph import GroundingGraph
from echogen_ros.model.checkpoint import sha256
from echogen_ros.model.generation import REFINE_BINS
from echogen_ros.model.letterbox import PAD_VALUE
from echogen_ros.model.pixels import OFFSET, SCALE

ONNX_NAME = "grounding.onnx"
OUTPUTS = ("tokens", "probs", "coords", "absent")  # what the graph returns, in order
SIDECAR_NAME = "grounding.json"
OPSET = 18
SIDECAR_VERSION = 3  # 2: the graph also outputs refined coordinates ("coords"); 3: and "absent"


def example_inputs(model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    size = model.vision_size
    prompt = model.scheme.i2l_prompt([model.scheme.special["<unk>"]] * 3)
    ids = torch.tensor([prompt, prompt])
    return torch.zeros(1, 3, size, size), ids, torch.ones_like(ids)


def export_grounding(model, out: Path, fp16: bool = False) -> Path:
    """Export `model`'s grounding graph to out/grounding.onnx (+ grounding.json); returns the ONNX path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = model.model
    if weights.device.type != "cpu" or weights.dtype != torch.float32:  # export a CPU fp32 copy, leave the model
        weights = copy.deepcopy(weights).to("cpu", torch.float32)
    graph = GroundingGraph(weights.eval(), model.scheme).eval()
    batch = torch.export.Dim("batch", min=1, max=256)
    length = torch.export.Dim("length", min=8, max=int(model.model.config.text_config.max_position_embeddings) - 4)
    path = out / ONNX_NAME
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph, example_inputs(model), str(path), input_names=["pixels", "ids", "mask"],
            output_names=list(OUTPUTS), opset_version=OPSET, dynamo=True, verbose=False,
            dynamic_shapes={"pixels": {}, "ids": {0: batch, 1: length}, "mask": {0: batch, 1: length}},
        )  # fmt: skip
    scheme = model.scheme
    sidecar = {
        "version": SIDECAR_VERSION,
        "onnx": ONNX_NAME,
        "onnx_sha256": sha256(path),
        "opset": OPSET,
        "fp16": fp16,  # build TensorRT engines (TensorRT EP or native) in FP16
        "model_weights_sha256": model.manifest.get("files", {}).get("model.safetensors"),
        "inputs": {
            "pixels": {"dtype": "float32", "shape": [1, 3, model.vision_size, model.vision_size],
                       "meaning": "RGB letterboxed to vision_size (pad value below), scaled to [-1, 1], NCHW"},
            "ids": {"dtype": "int64", "shape": ["batch", "length"], "meaning": "I2L prompts, left-padded with pad"},
            "mask": {"dtype": "int64", "shape": ["batch", "length"], "meaning": "1 = token, 0 = left padding"},
        },
        "outputs": {
            "tokens": {"dtype": "int64", "shape": ["batch", 4], "meaning": "x1 y1 x2 y2 bin tokens"},
            "probs": {"dtype": "float32", "shape": ["batch", 4], "meaning": "probability of each chosen token"},
            "coords": {"dtype": "float32", "shape": ["batch", 4],
                       "meaning": "x1 y1 x2 y2 in [0, 1] of the letterboxed frame: probability-weighted mean of "
                                  "the bin centres within refine_bins of each chosen bin"},
            "absent": {"dtype": "float32", "shape": ["batch"],
                       "meaning": "probability of the no-target token (</box>) in place of the first bin"},
        },
        "preprocess": {"letterbox_size": model.vision_size, "pad_value": PAD_VALUE, "scale": SCALE, "offset": OFFSET},
        "scheme": {"bins": scheme.bins, "bin_offset": scheme.bin_offset, "image_tokens": scheme.image_tokens,
                   "special": scheme.special, "refine_bins": REFINE_BINS},
    }  # fmt: skip
    (out / SIDECAR_NAME).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return path


def read_sidecar(directory: Path) -> dict:
    path = Path(directory) / SIDECAR_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `echogen export --model ... --out {directory}`")
    sidecar = json.loads(path.read_text(encoding="utf-8"))
    if sidecar.get("version") != SIDECAR_VERSION:
        raise ValueError(
            f"{path}: sidecar version {sidecar.get('version')}, this echogen_ros reads {SIDECAR_VERSION}; "
            f"export again (echogen export --model ... --out {directory})"
        )
    if sidecar.get("scheme", {}).get("refine_bins") != REFINE_BINS:
        raise ValueError(
            f"{path}: the graph refines box coordinates over {sidecar.get('scheme', {}).get('refine_bins')} bins, "
            f"this echogen_ros over {REFINE_BINS}; export again (echogen export --model ... --out {directory})"
        )
    onnx = Path(directory) / sidecar["onnx"]
    if not onnx.is_file() or sha256(onnx) != sidecar["onnx_sha256"]:
        raise ValueError(f"{onnx} is missing or does not match {SIDECAR_NAME}; export again")
    return sidecar
