"""Smoke tests of the experiments without tests of their own: each imports as part of the `experiments`
package and has its command-line entry; the ablation table prints a row per run it finds."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

import experiments
import pytest
from experiments import ablation_table

SCRIPTS = sorted(m.name for m in pkgutil.iter_modules(experiments.__path__) if m.name != "world_export")


def test_the_package_lists_every_experiment() -> None:
    assert {"ablation_table", "l2i_nll", "sample_grids", "vq_ceiling"} <= set(SCRIPTS)
    assert all(f"- {name}:" in experiments.__doc__ for name in SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_experiment_imports_and_has_a_main(name: str) -> None:
    module = importlib.import_module(f"experiments.{name}")
    assert callable(module.main) and f"python -m experiments.{name}" in module.__doc__


def test_the_ablation_table_has_a_row_per_run(tmp_path: Path, capsys) -> None:
    row = tmp_path / "pmtp"
    row.mkdir()
    (row / "row.json").write_text(json.dumps({"title": "PMTP", "i2l_batches": 600, "l2i_batches": 600}))
    (row / "l2i.json").write_text(json.dumps({"l2i_ce": 4.25}))
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "row.json").write_text("{}")
    assert ablation_table.main(tmp_path) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| PMTP | 600 / 600 | — |") and "4.25" in lines[2]
    assert lines[3].startswith("| extra | 0 / 0 |")
