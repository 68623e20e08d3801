"""Model directories: transformers config + safetensors weights + tokenizer.json + `echogen.json`.

The manifest records the format version, the token scheme, the resolutions, the training stage, metrics
and the sha256 of every file, so a missing, truncated or swapped file is reported before loading.
No pickle anywhere: weights are safetensors only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "echogen.json"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
CONFIG = "config.json"
# the training pipeline's stages in order: the keys of a manifest's `training` record (besides `continuations`)
PIPELINE_STAGES = ("vision", "vq", "pmtp", "djo", "cycle_rl")


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
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version}, this echogen_ros reads {FORMAT_VERSION}")
    for key in ("preset", "scheme", "vision_size", "image_size", "files"):
        if key not in manifest:
            raise CheckpointError(f"{path} lacks {key!r}")
    if verify:
        for name, expected in manifest["files"].items():
            file = directory / name
            if not file.is_file():
                raise CheckpointError(f"{directory} is missing {name}; copy the whole model directory again")
            if sha256(file) != expected:
                raise CheckpointError(f"{file} does not match its sha256 in {MANIFEST}: truncated or replaced")
    return manifest
