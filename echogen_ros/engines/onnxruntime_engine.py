"""Grounding on ONNX Runtime: CPU here; CUDA and TensorRT execution providers where installed (TensorRT
EP with FP16 and an on-disk engine cache)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from echogen_ros.engines.base import BackendUnavailable, GroundingEngine, exported_graph
from echogen_ros.engines.cache import cache_root
from echogen_ros.engines.export import OUTPUTS


class OnnxRuntimeGrounder(GroundingEngine):
    name = "onnxruntime"

    def __init__(self, onnx_path: Path, providers: list, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)

    @classmethod
    def for_model(cls, model, model_dir=None, device: str = "cpu", threads: int = 0) -> OnnxRuntimeGrounder:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"onnxruntime is not installed ({exc})") from None
        path, sidecar = exported_graph(model, model_dir)
        return cls(path, providers_for(device, ort.get_available_providers(), sidecar["fp16"]), threads)

    def run(self, pixels: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.session.run(
            list(OUTPUTS), {"pixels": pixels.astype(np.float32, copy=False),
                                            "ids": ids.astype(np.int64, copy=False),
                                            "mask": mask.astype(np.int64, copy=False)},
        ))  # fmt: skip

    def describe(self) -> str:
        return f"onnxruntime {', '.join(self.session.get_providers())}"


def providers_for(device: str, available: list[str], fp16: bool) -> list:
    """The execution providers to ask for, best first (CPU always last)."""
    providers: list = []
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        if "TensorrtExecutionProvider" in available:
            engines = str(cache_root() / "ort_trt")
            providers.append(("TensorrtExecutionProvider", {"device_id": index, "trt_fp16_enable": fp16,
                                                             "trt_engine_cache_enable": True,
                                                             "trt_engine_cache_path": engines,
                                                             "trt_timing_cache_enable": True}))  # fmt: skip
        if "CUDAExecutionProvider" in available:
            providers.append(("CUDAExecutionProvider", {"device_id": index}))
        if not providers:
            raise BackendUnavailable(f"device {device} asked, but onnxruntime has no CUDA/TensorRT provider here")
    providers.append("CPUExecutionProvider")
    return providers
