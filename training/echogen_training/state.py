"""Training checkpoints without pickle: the model as an EchoGen directory, the trainer's tensors
(optimizer moments, RNG) as safetensors, everything else as JSON. Written to a temporary folder and
renamed, so a crash mid-save never damages the last good checkpoint.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from echogen_ros.model.checkpoint import CheckpointError, read_manifest
from echogen_ros.model.echogen import EchoGen

KEEP = 2


def checkpoint_root(out: Path) -> Path:
    return Path(out) / "checkpoints"


def latest(out: Path, report: Callable[[str], None] = lambda text: None) -> Path | None:
    """The newest checkpoint of the run that verifies (model hashes, readable trainer state), newest step
    first whatever `latest` names; `report` hears which one and why any newer one was skipped. None for a
    run without checkpoints. A run whose checkpoints all fail raises ValueError: it never starts over them."""
    root = checkpoint_root(out)
    candidates = sorted((p for p in root.glob("step_*") if p.is_dir()), reverse=True)
    skipped = []
    for path in candidates:
        problem = unusable(path)
        if problem is None:
            if skipped:
                report(f"resuming from {path.name}, the newest checkpoint that verifies; skipped {'; '.join(skipped)}")
            return path
        skipped.append(f"{path.name} ({problem})")
    if candidates:
        raise ValueError(f"{root} holds checkpoints but none can be resumed: {'; '.join(skipped)}. Move them away "
                         "or choose another run.out to start over")  # fmt: skip
    return None


def unusable(path: Path) -> str | None:
    """Why checkpoint `path` cannot be resumed from, or None when its files verify."""
    try:
        read_manifest(path / "model")
    except CheckpointError as exc:
        return str(exc)
    try:
        trainer = json.loads((path / "trainer.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "trainer.json is missing or truncated"
    if not isinstance(trainer, dict) or not isinstance(trainer.get("step"), int):
        return "trainer.json holds no step"
    try:
        with safe_open(str(path / "trainer.safetensors"), framework="pt") as tensors:
            tensors.keys()
    except (OSError, SafetensorError):
        return "trainer.safetensors is missing or truncated"
    return None


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state (keyed by parameter index or, under FSDP, by parameter name) → tensors + JSON."""
    tensors, plain = {}, {}
    for param, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim/{param}/{key}"] = value.detach().cpu().contiguous()
            else:
                plain[f"{param}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": plain}


def _param_key(text: str):
    return int(text) if text.isdigit() else text


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict = {}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, param, key = name.split("/", 2)
            state.setdefault(_param_key(param), {})[key] = value
    for name, value in meta["scalars"].items():
        param, key = name.split("/", 1)
        state.setdefault(_param_key(param), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save(
    out: Path,
    step: int,
    echogen: EchoGen,
    optimizer_state: dict,
    scheduler,
    data_position: int,
    config: dict,
    metrics: dict,
    extra_modules: dict[str, torch.nn.Module] | None = None,
    model_state: dict[str, torch.Tensor] | None = None,
    extra: dict | None = None,
    keep_every: int = 0,
) -> Path:
    """Write a checkpoint. `model_state` is the full state dict when the live model is sharded (FSDP).
    The last KEEP checkpoints stay, and those at multiples of `keep_every` (> 0): a long run's milestones."""
    root = checkpoint_root(out)
    name = f"step_{step:08d}"
    tmp = root / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    echogen.save(tmp / "model", stage=config["stage"], metrics=metrics, state_dict=model_state)
    tensors, optim_meta = _flatten_optimizer(optimizer_state)
    tensors["rng.torch"] = torch.get_rng_state()
    for key, module in (extra_modules or {}).items():
        tensors.update({f"module.{key}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
    save_file(tensors, str(tmp / "trainer.safetensors"))
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    trainer = {
        "step": step,
        "data_position": data_position,
        "optimizer": optim_meta,
        "scheduler": scheduler.state_dict(),
        "rng": {
            "python": [python_state[0], list(python_state[1]), python_state[2]],
            "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        },
        "config": config,
        "metrics": metrics,
        **(extra or {}),
    }
    (tmp / "trainer.json").write_text(json.dumps(trainer, indent=1, default=_json_default) + "\n")
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    pointer = root / ".latest.tmp"
    pointer.write_text(name + "\n")
    pointer.replace(root / "latest")
    for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-KEEP]:
        if keep_every <= 0 or int(old.name.removeprefix("step_")) % keep_every:
            shutil.rmtree(old)
    return final


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in trainer.json")


def restore(
    path: Path,
    scheduler,
    extra_modules: dict[str, torch.nn.Module] | None = None,
) -> tuple[dict, dict]:
    """Load scheduler, RNG and extra modules from a checkpoint; return (trainer.json, optimizer state)."""
    trainer = json.loads((path / "trainer.json").read_text())
    tensors = load_file(str(path / "trainer.safetensors"))
    optimizer_state = _unflatten_optimizer(tensors, trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    version, internal, gauss = trainer["rng"]["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = trainer["rng"]["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    for key, module in (extra_modules or {}).items():
        prefix = f"module.{key}."
        module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    return trainer, optimizer_state
