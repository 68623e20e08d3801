"""Export + onnxruntime parity, backend selection with its fallback messages, engine-cache keying, and
the TensorRT engine (skipped where TensorRT is not installed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from echogen_ros.cli import main
from echogen_ros.engines.base import BackendUnavailable, EngineGrounded
from echogen_ros.engines.cache import EngineCache, engine_key
from echogen_ros.engines.export import export_grounding, read_sidecar
from echogen_ros.engines.onnxruntime_engine import OnnxRuntimeGrounder, providers_for
from echogen_ros.engines.parity import parity
from echogen_ros.engines.select import load_grounding_model
from echogen_ros.model import vision_stem
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import Layout, LayoutObject
from echogen_ros.params import validate


@pytest.fixture(scope="module")
def exported(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx")
    export_grounding(EchoGen.load(tiny_model_dir), out)
    return out


def test_sidecar_describes_the_graph(exported: Path, tiny_model_dir: Path) -> None:
    sidecar = read_sidecar(exported)
    model = EchoGen.load(tiny_model_dir)
    assert sidecar["opset"] >= 18 and sidecar["inputs"]["ids"]["shape"] == ["batch", "length"]
    assert sidecar["scheme"]["bin_offset"] == model.scheme.bin_offset and sidecar["scheme"]["bins"] == model.scheme.bins
    assert sidecar["preprocess"]["letterbox_size"] == model.vision_size


def test_onnxruntime_boxes_equal_torch_on_world_scenes(exported: Path, tiny_model_dir: Path) -> None:
    model = EchoGen.load(tiny_model_dir)
    engine = OnnxRuntimeGrounder(exported / "grounding.onnx", ["CPUExecutionProvider"])
    report = parity(model, engine, scenes=6)
    assert report["expressions"] > 20 and report["token_mismatches"] == 0 and report["max_score_error"] < 1e-4
    assert report["max_coord_error"] < 1e-5
    # dynamic batch: one image, batches of 1 and 5 prompts
    from echogen_ros.world.dataset import world_sample

    image = world_sample(0, 3, "test").image()
    grounded = engine.attach(model)
    assert grounded.echogen is model and not hasattr(model, "engine")  # wrapped: nothing attached to the model
    batch = grounded.ground_many(image, ["the cup", "the ball", "the red box", "the plate", "the bowl"])
    alone = [grounded.ground_many(image, [d.label])[0].box for d in batch]
    np.testing.assert_allclose(alone, [d.box for d in batch], atol=1e-3)  # refined coordinates: float noise only
    on_torch = model.ground_many(image, [d.label for d in batch])
    np.testing.assert_allclose([d.box for d in on_torch], [d.box for d in batch], atol=1e-2)  # the same boxes
    layout = Layout(image.shape[1], image.shape[0], tuple(LayoutObject(d.label, d.box) for d in batch[:3]))
    back = grounded.ground_layout(image, layout)  # labels named once: on the engine, batched
    np.testing.assert_allclose([d.box for d in back], [d.box for d in batch[:3]], atol=1e-3)
    assert grounded.max_objects == model.max_objects and grounded.imagine == model.imagine  # the rest: the model's


def test_tampered_export_is_rejected(exported: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    (copy / "grounding.onnx").write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="does not match"):
        read_sidecar(copy)
    with pytest.raises(FileNotFoundError, match="echogen export"):
        read_sidecar(tmp_path)
    other = tmp_path / "other"  # a graph that refines over another window than this version
    shutil.copytree(exported, other)
    sidecar = json.loads((other / "grounding.json").read_text())
    sidecar["scheme"]["refine_bins"] += 1
    (other / "grounding.json").write_text(json.dumps(sidecar))
    with pytest.raises(ValueError, match="refines box coordinates over"):
        read_sidecar(other)


def test_export_leaves_a_16_bit_model_as_it_was(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The exporter traces a CPU fp32 copy: the model it was given keeps its dtype (and device)."""
    import torch

    model = EchoGen.load(tiny_model_dir, dtype=torch.bfloat16)
    export_grounding(model, tmp_path / "onnx")
    assert model.dtype == torch.bfloat16 and read_sidecar(tmp_path / "onnx")["version"] >= 2


def test_fallback_chain_is_logged(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ECHOGEN_CACHE", str(tmp_path / "cache"))
    lines: list[str] = []
    model = load_grounding_model(tiny_model_dir, "tensorrt", "cpu", log=lines.append)
    assert "tensorrt unavailable" in lines[0] and "falling back to onnxruntime" in lines[0]
    assert lines[-1].startswith("grounding backend: onnxruntime") and isinstance(model, EngineGrounded)
    assert list((tmp_path / "cache" / "onnx").glob("*/grounding.onnx"))  # exported on first use
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            load_grounding_model(tiny_model_dir, "onnxruntime", "cuda")
    with pytest.raises(ValueError, match="unknown backend"):
        load_grounding_model(tiny_model_dir, "openvino")


def test_an_export_of_another_version_is_exported_again_in_the_cache_and_refused_in_a_model(
    tiny_model_dir: Path, exported: Path, tmp_path: Path, monkeypatch
) -> None:
    """The cache is ours: a graph an older echogen_ros wrote there is replaced. A graph the user exported next
    to the model is theirs: onnxruntime is unavailable, saying how to export again, and grounding falls back
    to torch."""
    import shutil

    from echogen_ros.engines.base import exported_graph
    from echogen_ros.engines.cache import onnx_dir

    monkeypatch.setenv("ECHOGEN_CACHE", str(tmp_path / "cache"))
    model = EchoGen.load(tiny_model_dir)
    old = json.loads((exported / "grounding.json").read_text())
    old["version"] = 1
    shutil.copytree(exported, onnx_dir(model))
    (onnx_dir(model) / "grounding.json").write_text(json.dumps(old))
    path, sidecar = exported_graph(model, None)
    assert path.parent == onnx_dir(model) and sidecar["version"] == read_sidecar(exported)["version"] > 1
    user = tmp_path / "model"
    shutil.copytree(tiny_model_dir, user)
    shutil.copytree(exported, user / "onnx")
    (user / "onnx" / "grounding.json").write_text(json.dumps(old))
    with pytest.raises(BackendUnavailable, match="export again"):
        exported_graph(model, user)
    lines: list[str] = []
    assert isinstance(load_grounding_model(user, "onnxruntime", "cpu", log=lines.append), EchoGen)
    assert "export again" in lines[0] and lines[-1].startswith("grounding backend: torch")


def test_providers_prefer_tensorrt_then_cuda_then_cpu() -> None:
    everything = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen = providers_for("cuda:1", everything, fp16=True)
    assert [p[0] if isinstance(p, tuple) else p for p in chosen] == everything
    assert chosen[0][1]["trt_fp16_enable"] is True and chosen[0][1]["device_id"] == 1
    assert providers_for("cpu", everything, fp16=True) == ["CPUExecutionProvider"]
    with pytest.raises(BackendUnavailable, match="no CUDA"):
        providers_for("cuda", ["CPUExecutionProvider"], fp16=False)


def test_engine_cache_keys_and_stale_engines(tmp_path: Path) -> None:
    profile = {"ids": [[1, 10], [1, 20], [16, 256]]}
    base = ("10.3.0", "NVIDIA H100", "abc", True, profile)
    key = engine_key(*base)
    assert key == engine_key(*base)
    variants = [("10.4.0", *base[1:]), (base[0], "Orin", *base[2:]), (*base[:2], "abd", *base[3:]),
                (*base[:3], False, profile), (*base[:4], {"ids": [[1, 10], [1, 20], [8, 256]]})]  # fmt: skip
    assert len({engine_key(*v) for v in variants} | {key}) == 6
    cache = EngineCache(tmp_path)
    record = {"tensorrt": "10.3.0", "gpu": "NVIDIA H100", "onnx": "abc", "fp16": True, "profile": profile}
    assert cache.load(key, record) is None
    cache.store(key, record, b"engine-bytes")
    assert cache.load(key, record) == b"engine-bytes"
    assert cache.load(key, {**record, "gpu": "Orin"}) is None  # foreign engine under the same name: rebuilt
    (tmp_path / f"{key}.json").write_text("{broken")
    assert cache.load(key, record) is None


def test_tensorrt_engine_builds_and_matches(exported: Path, tiny_model_dir: Path) -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (it is not installable on this machine)")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU")
    from echogen_ros.engines.tensorrt_engine import TensorRTGrounder

    model = EchoGen.load(tiny_model_dir)
    report = parity(model, TensorRTGrounder.for_model(model, None, "cuda"), scenes=3)
    assert report["token_mismatches"] <= report["expressions"] * 0.05  # FP16 may flip a near-tie


def test_export_cli_and_ground_with_backend(tiny_model_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("ECHOGEN_CACHE", str(tmp_path / "cache"))
    assert main(["export", "--model", str(tiny_model_dir), "--out", str(tmp_path / "onnx")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["token_mismatches"] == 0
    import cv2

    from echogen_ros.world.dataset import world_sample

    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), world_sample(0, 0, "test").image()[..., ::-1])
    # threshold 0: the random tiny model is never sure, and every box is wanted here
    args = ["ground", "--image", str(image), "--expr", "the cup", "--model", str(tiny_model_dir), "--json",
            "--threshold", "0"]  # fmt: skip
    assert main([*args, "--backend", "onnxruntime"]) == 0
    captured = capsys.readouterr()
    ort_box = json.loads(captured.out)["detections"][0]["box"]
    assert "grounding backend: onnxruntime" in captured.err
    assert main([*args, "--backend", "torch"]) == 0
    assert json.loads(capsys.readouterr().out)["detections"][0]["box"] == ort_box
    assert validate("backend", "tensorrt") is None and "choose from" in validate("backend", "openvino")
    assert np.isfinite(ort_box).all()


def test_a_model_with_a_vision_stem_exports_it(tmp_path: Path) -> None:
    """The stem is a forward hook on the patch embedding: the exported graph must run it, or the engine's boxes
    would be those of the model without it."""
    model = EchoGen.create("tiny", seed=0)
    vision_stem.enable(model.model)
    with torch.no_grad():  # a stem that changes what the encoder computes
        vision_stem.stem_of(model.model).net[-1].weight.normal_(0, 2.0, generator=torch.Generator().manual_seed(1))
    model = EchoGen.load(model.save(tmp_path / "model"))
    export_grounding(model, tmp_path / "onnx")
    engine = OnnxRuntimeGrounder(tmp_path / "onnx" / "grounding.onnx", ["CPUExecutionProvider"])
    report = parity(model, engine, scenes=3)
    assert report["expressions"] > 10 and report["token_mismatches"] == 0 and report["max_score_error"] < 1e-5
    without = parity(EchoGen.create("tiny", seed=0), engine, scenes=3)  # the same model without its stem differs
    assert without["max_score_error"] > 1e-4
