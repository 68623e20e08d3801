"""Model directories: transformers config + safetensors weights + tokenizer.json + `echogen.json`.

The manifest records the format version, the token scheme, the resolutions, the training stage, metrics
and the sha256 of every file, so a missing, truncated or swapped file is reported before loading.
No pickle anywhere: weights are safetensors only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from transformers.utils import logging as hf_logging

MANIFEST = "echogen.json"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
CONFIG = "config.json"
# the training pipeline's stages in order: the keys of a manifest's `training` record (besides `continuations`)
PIPELINE_STAGES = ("vision", "vq", "pmtp", "djo", "cycle_rl")
# the manifest fields the loader reads, with their JSON types
REQUIRED = {"preset": (str,), "scheme": (dict,), "vision_size": (int,), "image_size": (int,), "files": (dict,)}
OPTIONAL = {
    "max_objects": (int,), "guidance": (int, float), "temperature": (int, float), "capabilities": (list,),
}  # fmt: skip
SCHEME_REQUIRED = {"bins": (int,), "image_tokens": (int,)}
SCHEME_OPTIONAL = {"generation_tokens": (int,), "i2l_layout": (str,)}
# config.json keys of EchoGen's modules that are not Janus' (layout_decoder's decoder map, vision_stem's stem):
# transformers does not build them, so their weights are read after it has loaded the rest
EXTRA_MODULES = ("decoder_map", "vision_stem")


class CheckpointError(ValueError):
    """A model directory that cannot be used, with what to do about it."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path, manifest: dict) -> dict:
    """Hash the directory's files into `manifest["files"]` and write echogen.json."""
    files = {name: sha256(directory / name) for name in (CONFIG, WEIGHTS, TOKENIZER)}
    manifest = {**manifest, "format_version": FORMAT_VERSION, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def read_manifest(directory: Path, verify: bool = True) -> dict:
    """Load and check echogen.json; with `verify`, every listed file must exist and match its hash."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"model directory {directory} does not exist")
    path = directory / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{directory} has no {MANIFEST}: not an echogen model directory")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is not UTF-8 text") from None
    except RecursionError:
        raise CheckpointError(f"{path} nests too deeply to be a manifest") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version}, this echogen_ros reads {FORMAT_VERSION}")
    _check_fields(manifest, REQUIRED, OPTIONAL, str(path))
    _check_fields(manifest["scheme"], SCHEME_REQUIRED, SCHEME_OPTIONAL, f"{path}: scheme")
    for name, expected in manifest["files"].items():
        if not isinstance(expected, str):
            raise CheckpointError(f"{path}: the hash of {name!r} must be a string")
        if not verify:
            continue
        file = _file_of(directory, name)
        if sha256(file) != expected:
            raise CheckpointError(f"{file} does not match its sha256 in {MANIFEST}: truncated or replaced")
    return manifest


def _file_of(directory: Path, name: str) -> Path:
    """`directory/name` if it is a file of the directory itself (a plain name, no link out of it); else the
    same error whether the file is missing or elsewhere, so a manifest cannot probe the machine."""
    file = directory / name
    plain = isinstance(name, str) and name == Path(name).name and name not in ("", ".", "..") and "\\" not in name
    if not (plain and file.is_file() and file.resolve().parent == directory.resolve()):
        raise CheckpointError(f"{directory} has no file {name!r} of its own; copy the whole model directory again")
    return file


def _check_fields(record: dict, required: dict, optional: dict, where: str) -> None:
    """Each key of `required` present, and every key of either table of its type (bool is not a number)."""
    for key in required:
        if key not in record:
            raise CheckpointError(f"{where} lacks {key!r}")
    for key, kind in {**required, **optional}.items():
        value = record.get(key)
        if key in record and (not isinstance(value, kind) or (isinstance(value, bool) and bool not in kind)):
            names = " or ".join(k.__name__ for k in kind)
            raise CheckpointError(f"{where}: {key!r} must be {names}, not {type(value).__name__}")


@contextmanager
def quiet_extra_weights(config_file: Path) -> Iterator[None]:
    """While transformers loads a model whose config asks for one of `EXTRA_MODULES`: their weights are not
    Janus', so transformers would report them as unexpected keys (their modules read them next)."""
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        wanted = isinstance(config, dict) and any(config.get(key) for key in EXTRA_MODULES)
    except (OSError, ValueError):
        wanted = False  # transformers reports a missing or broken config itself
    if not wanted:
        yield
        return
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


def load_module_weights(module: nn.Module, prefix: str, weights: Path, what: str) -> None:
    """Copy `module`'s tensors from the safetensors file `weights`, stored under `prefix` + their names
    (ValueError naming the missing keys of `what` the config asks for)."""
    wanted = {prefix + name: tensor for name, tensor in module.state_dict().items()}
    with safe_open(str(weights), framework="pt") as stored:
        missing = sorted(set(wanted) - set(stored.keys()))
        if missing:
            raise ValueError(f"config.json asks for {what} but the weights lack {', '.join(missing)}")
        with torch.no_grad():
            for key, tensor in wanted.items():
                tensor.copy_(stored.get_tensor(key))
