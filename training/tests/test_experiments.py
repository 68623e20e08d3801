"""Smoke tests of the experiments without tests of their own: each imports as part of the `experiments`
package and has its command-line entry; the ablation table prints a row per run it finds."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

import experiments
import pytest
import torch
from experiments import ablation_table

SCRIPTS = sorted(m.name for m in pkgutil.iter_modules(experiments.__path__) if m.name != "world_export")


def test_the_package_lists_every_experiment() -> None:
    assert {"ablation_table", "l2i_nll", "sample_grids", "vq_ceiling"} <= set(SCRIPTS)
    assert all(f"- {name}:" in experiments.__doc__ for name in SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_experiment_imports_and_has_a_main(name: str) -> None:
    module = importlib.import_module(f"experiments.{name}")
    assert callable(module.main) and f"python -m experiments.{name}" in module.__doc__


def _eval(acc: float, ap50: float, cycle: float) -> dict:
    cycle_report = {"mean_iou": cycle, "failure_rate": 1 - cycle}
    return {
        "grounding": {"acc@0.5": acc, "macc": acc / 2},
        "layout_to_image": {"ap50": ap50},
        "cycle": cycle_report,
        "controls": {"empty_table": {"layout_to_image": {"ap50": 0.01}, "cycle": cycle_report}},
    }


def test_the_ablation_table_has_a_row_per_run_with_the_seeds_spread(tmp_path: Path, capsys) -> None:
    plan = {"steps": 1200, "djo": 25, "rl": 20, "djo_from": 500, "rl_from": 450}
    for seed, acc in ((0, 0.5), (1, 0.7)):
        run = tmp_path / f"seed{seed}" / "pmtp"
        run.mkdir(parents=True)
        (run.parent / "plan.json").write_text(json.dumps(plan))
        (run / "eval.json").write_text(json.dumps(_eval(acc, 0.3, 0.6)))
        (run / "l2i.json").write_text(json.dumps({"l2i_ce": 4.25}))
        (run / "metrics.jsonl").write_text(json.dumps({"step": 600, "split": "train", "time_s": 120.0}) + "\n")
    assert ablation_table.main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4  # header, rule, the PMTP row, one control
    assert lines[2].startswith("| PMTP (both tasks every step) | 600 PMTP steps (I2L + L2I) | 2 ± 0 | 0.600 ± 0.141 |")
    assert "4.25 ± 0.00" in lines[2] and lines[2].endswith("| 2 |")
    assert lines[3].startswith("| control: empty table") and "0.010 ± 0.000" in lines[3]
    (tmp_path / "seed1" / "plan.json").write_text(json.dumps({**plan, "steps": 1400}))  # seeds that disagree
    assert ablation_table.main([str(tmp_path)]) == 2
    assert "plan.json" in capsys.readouterr().err


def test_the_pixel_ceiling_windows_hold_their_object_and_the_report_has_every_band(capsys) -> None:
    from experiments import pixel_ceiling

    from echogen_ros.world import catalog
    from echogen_ros.world.dataset import world_sample
    from echogen_ros.world.scene import SceneConfig

    x, y, heldout = pixel_ceiling.windows(128, "heldout", 7, 2, (1.0, 1.0))
    objects = [o for i in range(2) for o in world_sample(7, i, "heldout", SceneConfig()).scene.objects]
    assert x.shape == (len(objects), 3, 32, 32) and len(y) == len(heldout) == len(objects)
    assert [catalog.CATEGORIES[int(c)] for c in y] == [o.category for o in objects]
    centre = x[:, :, 15:17, 15:17]  # the object's box centre: its colour, not the table's grey
    assert (centre.amax(dim=(1, 2, 3)) - centre.amin(dim=(1, 2, 3))).gt(0.2).any()
    assert pixel_ceiling.classifier(10, 256)(torch.zeros(2, 3, 64, 64)).shape == (2, 10)
    argv = ["--sizes", "64", "--train-scenes", "4", "--test-scenes", "2", "--epochs", "1"]
    assert pixel_ceiling.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["sizes"]["64"]) == {"objects", "0.5-0.7", "0.7-1.3", "1.3-1.6"}
    with pytest.raises(SystemExit):
        pixel_ceiling.main(["--sizes", "16"])
