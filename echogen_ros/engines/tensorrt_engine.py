"""Grounding on native TensorRT (Jetson / GPU): engine built from the exported ONNX (FP16 by default),
cached on disk by TensorRT version + GPU name + ONNX hash + options, a timing cache, pinned host buffers,
and `execute_async_v3` on a CUDA stream. TensorRT is not installable on the machines this project is
developed on: this module follows the documented TensorRT 10 Python API, and its tests skip without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from echogen_ros.engines.base import BackendUnavailable, GroundingEngine, exported_graph
from echogen_ros.engines.cache import EngineCache, cache_root, engine_key
from echogen_ros.engines.export import OUTPUTS

MAX_BATCH = 16
MAX_LENGTH = 256


def optimisation_profile(image_tokens: int, vision_size: int) -> dict:
    """min / opt / max shapes of the dynamic inputs (prompt length ≥ the image tokens + a few)."""
    shortest = image_tokens + 6
    return {
        "pixels": [[1, 3, vision_size, vision_size]] * 3,
        "ids": [[1, shortest], [1, shortest + 12], [MAX_BATCH, MAX_LENGTH]],
        "mask": [[1, shortest], [1, shortest + 12], [MAX_BATCH, MAX_LENGTH]],
    }


class TensorRTGrounder(GroundingEngine):
    name = "tensorrt"

    def __init__(self, engine_bytes: bytes, trt, torch) -> None:
        self.trt, self.torch = trt, torch
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise BackendUnavailable("TensorRT could not deserialize the cached engine")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.host: dict[str, object] = {}

    @classmethod
    def for_model(cls, model, model_dir=None, device: str = "cuda") -> TensorRTGrounder:
        try:
            import tensorrt as trt
            import torch
        except ImportError as exc:
            raise BackendUnavailable(f"TensorRT is not installed ({exc})") from None
        if not torch.cuda.is_available():
            raise BackendUnavailable("TensorRT needs a CUDA GPU; none is visible")
        onnx_path, sidecar = exported_graph(model, model_dir)
        gpu = torch.cuda.get_device_name(torch.device(device if device.startswith("cuda") else "cuda"))
        profile = optimisation_profile(sidecar["scheme"]["image_tokens"], sidecar["preprocess"]["letterbox_size"])
        fp16 = bool(sidecar.get("fp16", True))
        record = {"tensorrt": trt.__version__, "gpu": gpu, "onnx": sidecar["onnx_sha256"], "fp16": fp16,
                  "profile": profile}  # fmt: skip
        key = engine_key(trt.__version__, gpu, sidecar["onnx_sha256"], fp16, profile)
        cache = EngineCache(cache_root() / "tensorrt")
        engine = cache.load(key, record)
        if engine is None:
            engine = build_engine(trt, onnx_path, profile, fp16, cache.timing_cache())
            cache.store(key, record, engine)
        return cls(engine, trt, torch)

    def run(self, pixels: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
        torch = self.torch
        batch = ids.shape[0]
        inputs = {"pixels": pixels.astype(np.float32), "ids": ids.astype(np.int64), "mask": mask.astype(np.int64)}
        device = {}
        with torch.cuda.stream(self.stream):
            for name, array in inputs.items():
                self.context.set_input_shape(name, array.shape)
                pinned = torch.from_numpy(array).pin_memory()
                device[name] = pinned.to("cuda", non_blocking=True)
                self.context.set_tensor_address(name, device[name].data_ptr())
            outputs = {"tokens": torch.empty((batch, 4), dtype=torch.int64, device="cuda"),
                       "probs": torch.empty((batch, 4), dtype=torch.float32, device="cuda"),
                       "coords": torch.empty((batch, 4), dtype=torch.float32, device="cuda"),
                       "absent": torch.empty((batch,), dtype=torch.float32, device="cuda")}  # fmt: skip
            for name, tensor in outputs.items():
                self.context.set_tensor_address(name, tensor.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
            host = {k: torch.empty(v.shape, dtype=v.dtype, pin_memory=True) for k, v in outputs.items()}
            for name in outputs:
                host[name].copy_(outputs[name], non_blocking=True)
        self.stream.synchronize()
        return tuple(host[name].numpy() for name in OUTPUTS)

    def describe(self) -> str:
        return f"TensorRT {self.trt.__version__}"


def build_engine(trt, onnx_path: Path, profile: dict, fp16: bool, timing_cache: Path) -> bytes:
    """Parse the ONNX graph and build a serialized engine (FP16 if asked), reusing the timing cache."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    # TensorRT 10 networks are always explicit-batch; 8.x (JetPack 5) needs the flag
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailable(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    shapes = builder.create_optimization_profile()
    for name, (low, opt, high) in profile.items():
        shapes.set_shape(name, low, opt, high)
    config.add_optimization_profile(shapes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendUnavailable("TensorRT failed to build the grounding engine (see the log above)")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(memoryview(config.get_timing_cache().serialize()))
    return bytes(serialized)
