"""training/scripts/train_tabletop_timed.sh as documented, from another directory and with no PYTHON set (the
checkout's .venv python, else python3): the five stages of a tiny model, shipped after pmtp, djo and cycle_rl
into SHIP_DIR (each ship replacing the last); a SHIP_DIR echogen did not write is refused before training."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_tabletop_timed.sh"
ROOT = SCRIPT.parents[2]
TINY = [
    "data.count=16", "data.render_scales=[0.25]", "optim.max_steps=2", "optim.warmup_steps=1", "run.autocast=none",
    "cycle_rl.group_size=2",
]  # fmt: skip
SIZES = {"VISION_BATCH": "4", "VQ_BATCH": "4", "PMTP_BATCH": "4", "DJO_BATCH": "4", "RL_BATCH": "2"}


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "PYTHONPATH")}
    env.update(SIZES, WORKERS="0", PRESET="tiny", OMP_NUM_THREADS="1")
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600
    )


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(), reason="needs the checkout's .venv")
def test_five_stages_ship_three_times_into_ship_dir(tmp_path: Path) -> None:
    done = _run(tmp_path, "runs", "ship", "5", *TINY)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line.split(":")[0] for line in done.stdout.splitlines() if line.startswith("== ")] == [
        "== vision", "== vq", "== pmtp", "== djo", "== cycle_rl", "== finished",
    ]  # fmt: skip
    assert sum(line.startswith(f"wrote {tmp_path / 'ship'} ") for line in done.stdout.splitlines()) == 3
    manifest = json.loads((tmp_path / "ship" / "echogen.json").read_text())
    assert set(manifest["training"]) == {"vision", "vq", "pmtp", "djo", "cycle_rl"}
    assert manifest["training"]["cycle_rl"]["steps"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial ship left beside it


def test_a_foreign_ship_dir_is_refused_before_training(tmp_path: Path) -> None:
    (tmp_path / "ship").mkdir()
    (tmp_path / "ship" / "notes.txt").write_text("mine")
    done = _run(tmp_path, "runs", "ship", "5")
    assert done.returncode == 2 and "SHIP_DIR" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "runs").exists() and (tmp_path / "ship" / "notes.txt").read_text() == "mine"
