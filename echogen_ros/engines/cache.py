"""Where exported graphs and TensorRT engines live, and how an engine is keyed so that a stale or
foreign engine is rebuilt rather than loaded: TensorRT version + GPU name + ONNX hash + build options."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def cache_root() -> Path:
    """$ECHOGEN_CACHE, else $XDG_CACHE_HOME/echogen_ros, else ~/.cache/echogen_ros."""
    if os.environ.get("ECHOGEN_CACHE"):
        return Path(os.environ["ECHOGEN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "echogen_ros"


def onnx_dir(model) -> Path:
    """The exported graph of a model, keyed by its weights' hash."""
    digest = model.manifest.get("files", {}).get("model.safetensors") or "unsaved"
    return cache_root() / "onnx" / digest[:16]


def engine_key(trt_version: str, gpu_name: str, onnx_sha256: str, fp16: bool, profile: dict) -> str:
    """A stable key of everything that makes a serialized engine valid."""
    record = {"tensorrt": trt_version, "gpu": gpu_name, "onnx": onnx_sha256, "fp16": fp16, "profile": profile}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


class EngineCache:
    """engine files `<key>.engine` with a `<key>.json` record; lookups verify the record, not just the name."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.engine"

    def load(self, key: str, expected: dict) -> bytes | None:
        """The cached engine for `key` if its record matches `expected` exactly; else None (rebuild)."""
        engine, record = self.path(key), self.root / f"{key}.json"
        if not engine.is_file() or not record.is_file():
            return None
        try:
            stored = json.loads(record.read_text())
        except json.JSONDecodeError:
            return None
        if stored != expected:
            return None
        return engine.read_bytes()

    def store(self, key: str, record: dict, engine: bytes) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.path(key).with_suffix(".engine.tmp")
        tmp.write_bytes(engine)
        tmp.replace(self.path(key))
        (self.root / f"{key}.json").write_text(json.dumps(record, sort_keys=True))
        return self.path(key)

    def timing_cache(self) -> Path:
        return self.root / "timing.cache"
