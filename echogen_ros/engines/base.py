"""What a grounding engine is: a callable from (pixels, ids, mask) to (tokens, probs, coords), attached to
EchoGen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from echogen_ros.engines.cache import onnx_dir
from echogen_ros.engines.export import ONNX_NAME, SIDECAR_NAME, SIDECAR_VERSION, export_grounding, read_sidecar


class BackendUnavailable(RuntimeError):
    """A backend that cannot run here (library missing, no GPU, no exported graph)."""


class GroundingEngine:
    name = "engine"

    def run(self, pixels: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """pixels (1|B, 3, S, S) float32, ids/mask (B, T) int64 → tokens (B, 4) int64, probs (B, 4) float32,
        coords (B, 4) float32 (refined normalised x1 y1 x2 y2)."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def attach(self, model):
        """Route `model`'s greedy grounding through this engine (imagining stays on torch)."""
        model.engine = self
        return model


def exported_graph(model, model_dir: str | Path | None) -> tuple[Path, dict]:
    """The model's ONNX graph: `<model_dir>/onnx/` if exported there (an older export there is an error: the
    user exported it), else the cache (exported on first use, and again when this version writes another
    graph)."""
    candidates = [Path(model_dir) / "onnx"] if model_dir else []
    candidates.append(onnx_dir(model))
    for directory in candidates:
        if (directory / ONNX_NAME).is_file() and (directory / SIDECAR_NAME).is_file():
            if directory == candidates[-1] and _sidecar_version(directory) != SIDECAR_VERSION:
                break  # our own cache, written by another version: export again
            return directory / ONNX_NAME, read_sidecar(directory)
    directory = candidates[-1]
    export_grounding(model, directory)
    return directory / ONNX_NAME, read_sidecar(directory)


def _sidecar_version(directory: Path):
    try:
        return json.loads((directory / SIDECAR_NAME).read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        return None
