"""What a grounding engine is: a callable from (pixels, ids, mask) to (tokens, probs, coords, absent), and the
EchoGen wrapper that grounds with one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from echogen_ros.engines.cache import onnx_dir
from echogen_ros.engines.export import ONNX_NAME, SIDECAR_NAME, export_grounding, read_sidecar


class BackendUnavailable(RuntimeError):
    """A backend that cannot run here (library missing, no GPU, no exported graph)."""


class GroundingEngine:
    name = "engine"

    def run(self, pixels: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
        """pixels (1|B, 3, S, S) float32, ids/mask (B, T) int64 → tokens (B, 4) int64, probs (B, 4) float32,
        coords (B, 4) float32 (refined normalised x1 y1 x2 y2), absent (B,) float32 (no-target probability)."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def attach(self, model) -> EngineGrounded:
        """`model` with its greedy grounding on this engine (imagining stays on torch)."""
        return EngineGrounded(model, self)


class EngineGrounded:
    """An EchoGen whose greedy grounding runs on an engine: `ground` (top_k = 1), `ground_many`,
    `ground_layout`, `cycle` and `check_cycle` pass the engine down as their box decoder; anything else is the model's.
    The wrapper holds the model, so the model never calls up into engines."""

    def __init__(self, model, engine: GroundingEngine) -> None:
        self.echogen, self.engine = model, engine

    def __getattr__(self, name: str):
        return getattr(self.echogen, name)  # imagine, max_objects, scheme, ...: the model's own

    def ground(self, image: np.ndarray, expression: str, top_k: int = 1):
        return self.echogen.ground(image, expression, top_k, decode=self.engine.run)

    def ground_many(self, image: np.ndarray, expressions: list[str]):
        return self.echogen.ground_many(image, expressions, decode=self.engine.run)

    def ground_layout(self, image: np.ndarray, layout):
        return self.echogen.ground_layout(image, layout, decode=self.engine.run)

    def cycle(self, layout, seed: int | None = None, caption: str | None = None):
        return self.echogen.cycle(layout, seed, caption, decode=self.engine.run)

    def check_cycle(self, image: np.ndarray, layout):
        return self.echogen.check_cycle(image, layout, decode=self.engine.run)


def exported_graph(model, model_dir: str | Path | None) -> tuple[Path, dict]:
    """The model's ONNX graph: `<model_dir>/onnx/` if exported there, else the cache (exported on first use).

    A graph the user exported next to the model that this version cannot use (an older sidecar version, a
    changed file) makes the backend unavailable, with the command that exports it again: the fallback chain
    goes on. The cache is ours: a graph there that this version cannot use is exported again."""
    cache = onnx_dir(model)
    if model_dir and (Path(model_dir) / "onnx" / SIDECAR_NAME).is_file():
        directory = Path(model_dir) / "onnx"
        try:
            return directory / ONNX_NAME, read_sidecar(directory)
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendUnavailable(f"{directory}: {exc}") from None
    if (cache / SIDECAR_NAME).is_file():
        try:
            return cache / ONNX_NAME, read_sidecar(cache)
        except (ValueError, KeyError, TypeError):
            pass  # written by another version, or damaged: export again
    try:
        export_grounding(model, cache)
    except Exception as exc:  # the exporter's failures are many and varied; grounding goes on down the chain
        raise BackendUnavailable(f"cannot export the grounding graph to {cache}: {type(exc).__name__}: {exc}") from None
    return cache / ONNX_NAME, read_sidecar(cache)
