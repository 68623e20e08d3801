"""Backend selection with a logged fallback chain: tensorrt → onnxruntime → torch.

Whatever backend grounds, imagining stays on torch; the returned object has EchoGen's interface.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from echogen_ros.engines.base import BackendUnavailable

BACKENDS = ("torch", "onnxruntime", "tensorrt")
FALLBACK = {"tensorrt": "onnxruntime", "onnxruntime": "torch"}


def load_grounding_model(
    path: str | Path | None,
    backend: str = "torch",
    device: str = "cpu",
    log: Callable[[str], None] = print,
):
    """An EchoGen whose grounding runs on `backend`, or on the next backend of the chain if it cannot."""
    from echogen_ros.model.echogen import EchoGen

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked, but this torch has no CUDA device; use device cpu")
    model = EchoGen.load(path, device=device)
    chain = [backend]
    while chain[-1] in FALLBACK:
        chain.append(FALLBACK[chain[-1]])
    for name in chain:
        if name == "torch":
            if backend != "torch":  # say so only when this is a fallback
                log(f"grounding backend: torch ({device})")
            return model
        try:
            engine = _engine(name, model, path, device)
        except BackendUnavailable as exc:
            log(f"grounding backend {name} unavailable ({exc}); falling back to {FALLBACK[name]}")
            continue
        log(f"grounding backend: {name} ({engine.describe()})")
        return engine.attach(model)
    raise AssertionError("the chain always ends with torch")


def _engine(name: str, model, path, device: str):
    if name == "onnxruntime":
        from echogen_ros.engines.onnxruntime_engine import OnnxRuntimeGrounder

        return OnnxRuntimeGrounder.for_model(model, path, device)
    from echogen_ros.engines.tensorrt_engine import TensorRTGrounder

    return TensorRTGrounder.for_model(model, path, device)
