"""EchoGen model directories: save and load, corrupted, hostile and foreign ones refused with one clear line,
the Janus-Pro loading path on a tiny saved Janus config, bin counts, presets and generation grids."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import JanusForConditionalGeneration

from echogen_ros.model.checkpoint import CheckpointError
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.layout import Layout, LayoutObject
from echogen_ros.model.presets import PRESETS, janus_config
from echogen_ros.model.vq import encode_tokens
from echogen_ros.world.dataset import world_sample

ROOT = Path(__file__).resolve().parents[1]
IMAGE = world_sample(0, 1, "val").image(320, 240)
LAYOUT = Layout(
    320, 240, (LayoutObject("red cup", (10, 20, 90, 100)), LayoutObject("plate", (150, 60, 300, 200))), "a table"
)


def test_save_then_load_gives_identical_outputs(tiny_model: EchoGen, tmp_path: Path) -> None:
    again = EchoGen.load(tiny_model.save(tmp_path / "copy"))
    assert again.ground(IMAGE, "the bowl") == tiny_model.ground(IMAGE, "the bowl")
    assert np.array_equal(again.imagine(LAYOUT, seed=5), tiny_model.imagine(LAYOUT, seed=5))
    manifest = json.loads((tmp_path / "copy" / "echogen.json").read_text())
    assert manifest["preset"] == "tiny" and manifest["scheme"]["bins"] == PRESETS["tiny"].bins
    assert not list((tmp_path / "copy").glob("*.bin")) and not list((tmp_path / "copy").glob("*.pt"))


def _corrupt_truncate(d: Path) -> None:
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])


def _corrupt_flip(d: Path) -> None:
    data = bytearray((d / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(data))


def _corrupt_manifest_version(d: Path) -> None:
    manifest = json.loads((d / "echogen.json").read_text())
    manifest["format_version"] = 99
    (d / "echogen.json").write_text(json.dumps(manifest))


def _edit_manifest(d: Path, edit) -> None:
    manifest = json.loads((d / "echogen.json").read_text())
    edit(manifest)
    (d / "echogen.json").write_text(json.dumps(manifest))


def _foreign_file(d: Path, name: str) -> None:
    """The manifest names a file outside the directory, with that file's true hash."""
    from echogen_ros.model.checkpoint import sha256

    target = d / name  # an absolute name stays absolute
    digest = sha256(target) if target.is_file() and target.stat().st_size else "0"  # /proc files read as empty
    _edit_manifest(d, lambda m: m["files"].__setitem__(name, digest))


def _link_out(d: Path) -> None:
    outside = d.parent / "outside.json"
    outside.write_bytes((d / "tokenizer.json").read_bytes())
    (d / "tokenizer.json").unlink()
    (d / "tokenizer.json").symlink_to(outside)


def _lying_weights(d: Path) -> None:
    """A safetensors header that promises far more data than the file holds, its hash made to match."""
    from echogen_ros.model.checkpoint import sha256

    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 20, 1 << 12], "data_offsets": [0, 1 << 34]}}).encode()
    (d / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(64))
    _edit_manifest(d, lambda m: m["files"].__setitem__("model.safetensors", sha256(d / "model.safetensors")))


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d: (d / "echogen.json").write_text("[1, 2]"), "must hold a JSON object"),
        (lambda d: (d / "echogen.json").write_text('{"a":' * 200_000 + "1" + "}" * 200_000), "nests too deeply"),
        (lambda d: (d / "echogen.json").write_bytes(b'{"\xff": 1}'), "not UTF-8"),
        (lambda d: _edit_manifest(d, lambda m: m.__setitem__("scheme", [1])), "'scheme' must be dict"),
        (lambda d: _edit_manifest(d, lambda m: m["scheme"].__setitem__("bins", "64")), "'bins' must be int"),
        (lambda d: _edit_manifest(d, lambda m: m.__setitem__("image_size", True)), "'image_size' must be int"),
        (lambda d: _edit_manifest(d, lambda m: m.__setitem__("files", ["config.json"])), "'files' must be dict"),
        (lambda d: _foreign_file(d, "/etc/passwd"), "has no file '/etc/passwd' of its own"),
        (lambda d: _foreign_file(d, "../../../../etc/passwd"), "has no file '../../../../etc/passwd' of its own"),
        (lambda d: _foreign_file(d, "/proc/self/mem"), "has no file '/proc/self/mem' of its own"),
        (lambda d: _foreign_file(d, "../no/such/file"), "has no file '../no/such/file' of its own"),  # same line
        (_link_out, "has no file 'tokenizer.json' of its own"),
        (_lying_weights, "cannot load weights"),
    ],
)
def test_hostile_model_directories_are_one_clear_error(tiny_model_dir: Path, tmp_path: Path, corrupt, message) -> None:
    """A manifest or weights file made to crash or probe the loader: a CheckpointError, never a traceback,
    and a path outside the directory reads the same whether or not it exists."""
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    corrupt(broken)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        EchoGen.load(broken)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_corrupt_truncate, "truncated or replaced"),
        (_corrupt_flip, "truncated or replaced"),
        (lambda d: (d / "tokenizer.json").unlink(), "has no file 'tokenizer.json' of its own"),
        (lambda d: (d / "echogen.json").unlink(), "not an echogen model directory"),
        (lambda d: (d / "echogen.json").write_text("{oops"), "not valid JSON"),
        (_corrupt_manifest_version, "format version 99"),
    ],
)
def test_corrupted_checkpoints_are_rejected(tiny_model_dir: Path, tmp_path: Path, corrupt, message: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    corrupt(broken)
    with pytest.raises(CheckpointError, match=message):
        EchoGen.load(broken)


def test_missing_directory_and_missing_default_are_clear(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        EchoGen.load(tmp_path / "nowhere")
    from echogen_ros.model import echogen

    monkeypatch.setattr(echogen, "DEFAULT_MODEL_DIR", tmp_path / "not-installed")
    with pytest.raises(CheckpointError, match="model-init"):
        EchoGen.load()


def test_janus_pro_directory_loads_extends_and_trains(tmp_path: Path) -> None:
    """A Janus-Pro-style directory (saved with save_pretrained + its own tokenizer) gains our tokens."""
    words = ["<unk>", "<|begin▁of▁sentence|>", "<image_placeholder>", "the", "red", "cup", "plate"]
    tokenizer = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    config = janus_config(PRESETS["tiny"], vocab_size=len(words), image_token_id=2)
    JanusForConditionalGeneration(config).save_pretrained(tmp_path / "janus")
    tokenizer.save(str(tmp_path / "janus" / "tokenizer.json"))

    model = EchoGen.from_janus_pro(tmp_path / "janus", bins=50)
    vocab = model.tokenizer.get_vocab_size()
    assert vocab > len(words) and model.model.get_input_embeddings().weight.shape[0] == vocab
    assert model.tokenizer.token_to_id("red") == 4  # original ids kept
    assert model.manifest["preset"] == "janus-pro" and model.scheme.bins == 50
    (det,) = model.ground(IMAGE, "the red cup")
    assert 0 <= det.box[0] < det.box[2] <= 320
    # a training step reaches the new token embeddings
    model.model.train()
    ids = torch.tensor([model.scheme.i2l_prompt([4, 5]) + model.scheme.i2l_target((0.1, 0.1, 0.4, 0.5))])
    pixels, _ = model.pixels(IMAGE)
    out = model.model(input_ids=ids, pixel_values=pixels, labels=ids)
    out.loss.backward()
    assert model.model.get_input_embeddings().weight.grad[model.scheme.bin_offset :].abs().sum() > 0
    reloaded = EchoGen.load(model.save(tmp_path / "echogen"))
    assert reloaded.scheme == model.scheme


def test_no_torchvision_anywhere() -> None:
    def ours(path: Path) -> bool:  # not a virtual environment (.venv, .venv-ros) or a build tree
        return not any(part.startswith(".venv") or part in ("build", "install", "log")
                       for part in path.relative_to(ROOT).parts)  # fmt: skip

    sources = [p for p in ROOT.rglob("*.py") if ours(p) and p.name != Path(__file__).name]
    assert not [p for p in sources if "torchvision" in p.read_text()]
    modules = "echogen_ros.cli.bench, echogen_ros.model.echogen, echogen_ros.evaluation.fid, torchmetrics.image.fid"
    code = f"import sys, {modules}; print('torchvision' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_bin_count_override_round_trips(tmp_path: Path) -> None:
    model = EchoGen.create("tiny", bins=16)
    assert model.scheme.bins == 16 and model.manifest["scheme"]["bins"] == 16
    again = EchoGen.load(model.save(tmp_path / "coarse"))
    assert again.scheme == model.scheme
    (det,) = again.ground(IMAGE, "the cup")
    assert 0 <= det.box[0] < det.box[2] <= 320


def test_a_model_trained_with_another_i2l_prompt_order_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "old"))
    manifest = json.loads((copy / "echogen.json").read_text())
    assert manifest["scheme"]["i2l_layout"] == "ref-image-box"
    manifest["scheme"]["i2l_layout"] = "image-ref-box"
    (copy / "echogen.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="I2L prompt order"):
        EchoGen.load(copy)


@pytest.mark.parametrize(("tokens", "grid"), [(None, 4), (16, 4), (64, None), (15, None)])
def test_the_manifests_generation_tokens_set_the_vq_grid(
    tiny_model_dir: Path, tmp_path: Path, tokens: int | None, grid: int | None
) -> None:
    # a manifest written before the two grids were separate has none: the encoder's grid, as in Janus; one that
    # disagrees with its VQ is refused
    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "m"))
    manifest = json.loads((copy / "echogen.json").read_text())
    manifest["scheme"].pop("generation_tokens")
    if tokens is not None:
        manifest["scheme"]["generation_tokens"] = tokens
    (copy / "echogen.json").write_text(json.dumps(manifest))
    if grid is None:
        with pytest.raises(CheckpointError, match="codes its VQ writes"):  # 32 px through 3 halvings: 4 × 4
            EchoGen.load(copy)
        return
    model = EchoGen.load(copy)
    assert model.scheme.generation_tokens == grid * grid and model.scheme.image_tokens == 16
    assert model.model.model.vqmodel.quantize.quant_state_dims == [grid, grid]


@pytest.mark.parametrize(
    ("preset", "vision_size", "image_size", "image_tokens", "generation_tokens"),
    [
        # the encoder sees 4× the pixels through 32 px patches; the LM still reads 8×8 tokens and the generator
        # still writes 8×8 (one grid for both, as in Janus)
        ("tabletop-256", 256, 64, 64, 64),
        # 64 px images written as 16×16 tokens while the encoder still reads 8×8 patches of 16 px
        ("tabletop-fine", 128, 64, 64, 256),
        # 128 px images as 32×32 tokens of 4 px, grounding as in tabletop-fine
        ("tabletop-128", 128, 128, 64, 1024),
        # 128 px images from tabletop-fine's 16×16 tokens, 8 px each (one more VQ level)
        ("tabletop-fine-128", 128, 128, 64, 256),
    ],
)
def test_larger_presets_ground_and_imagine(
    preset: str, vision_size: int, image_size: int, image_tokens: int, generation_tokens: int
) -> None:
    model = EchoGen.create(preset, seed=0)
    assert model.vision_size == vision_size and model.image_size == image_size
    assert (model.scheme.image_tokens, model.scheme.generation_tokens) == (image_tokens, generation_tokens)
    (found,) = model.ground(IMAGE, "the red cup")
    x1, y1, x2, y2 = found.box
    assert 0 <= x1 < x2 <= IMAGE.shape[1] and 0 <= y1 < y2 <= IMAGE.shape[0]
    assert model.imagine(LAYOUT, seed=0).shape == (LAYOUT.height, LAYOUT.width, 3)


def test_a_finer_generation_grid_survives_save_and_load(tmp_path) -> None:
    # JanusConfig resets the VQ's grid to the encoder's on every load; the manifest's generation_tokens wins
    model = EchoGen.create("tabletop-fine", seed=0)
    model.save(tmp_path / "fine")
    again = EchoGen.load(tmp_path / "fine")
    assert again.scheme.generation_tokens == 256 and again.scheme.image_tokens == 64
    assert again.model.model.vqmodel.quantize.quant_state_dims == [16, 16]
    pixels = torch.zeros(1, 3, 64, 64)
    codes = encode_tokens(again.model.model.vqmodel, pixels)
    assert codes.shape == (1, 256)
    assert again.model.decode_image_tokens(codes).shape == (1, 64, 64, 3)
    assert np.array_equal(again.imagine(LAYOUT, seed=3), model.imagine(LAYOUT, seed=3))
