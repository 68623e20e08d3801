"""Smoke tests of the experiments without tests of their own: each imports as part of the `experiments`
package and has its command-line entry; the ablation table prints a row per run it finds."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

import experiments
import numpy as np
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


def test_the_confidence_experiment_measures_every_signal_and_fits_a_calibration(capsys) -> None:
    """Two scenes of each split on the embedded model: every signal gets an AUROC and an ECE, and the
    logistic fit's confidences are probabilities with a reliability table."""
    from experiments import confidence

    assert confidence.main(["--scenes", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["answers"] > 0 and set(result["signals"]) == set(confidence.SIGNALS)
    fitted = result["logistic_fit_on_val"]
    assert 0 <= fitted["ece"] <= 1 and sum(row["count"] for row in fitted["reliability"]) == result["answers"]


def test_a_logistic_fit_recovers_known_weights() -> None:
    from experiments.confidence import fit_logistic

    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=4000), np.ones(4000)])
    y = (rng.random(4000) < 1 / (1 + np.exp(-(2.0 * x[:, 0] - 1.0)))).astype(float)
    assert fit_logistic(x, y) == pytest.approx([2.0, -1.0], abs=0.2)
