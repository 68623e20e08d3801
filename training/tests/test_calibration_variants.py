"""experiments.calibration_variants on hand-made rows: the answer is the crop's only where the whole frame's best
box is below the bound and a crop was read, and its "shipped" variant is the shipped calibration's fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from experiments import calibration_variants as variants

from echogen_ros.evaluation.trust import Row
from echogen_ros.model.confidence import Calibration


def _record(share: float, one: list, crop: list, name: str = "fit") -> dict:
    return {"set": name, "share": share, "rows": {"one look": one, "crop, larger absent": crop}}


def test_the_crop_answers_only_below_the_bound(tmp_path: Path) -> None:
    frame, crop = [0.6, 0.5, 0.1, 0.05, True, False, "category", ""], [0.9, 0.8, 0.2, 0.07, True, True, "category", ""]
    path = tmp_path / "rows.jsonl"
    records = [_record(0.05, frame, crop), _record(0.09, frame, crop), _record(0.05, frame, frame)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    answers = variants.shipped_rows(str(path), below=0.08)["fit"]
    assert [a["looked"] for a in answers] == [True, False, False]  # above the bound, or no crop read: the frame's
    assert answers[0]["row"].signals.score == 0.9 and answers[0]["row"].right and answers[1]["row"].signals.score == 0.6


def test_the_shipped_variant_is_the_shipped_fit_and_a_gate_gives_zero() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(300):
        score, absent = rng.uniform(0.05, 0.95), rng.uniform(0.01, 0.99)
        right = bool(rng.random() < score * (1 - absent))
        signals = variants.confidence.Signals(score, rng.uniform(0, 1), absent, rng.uniform(0.02, 0.2))
        rows.append(Row(signals, True, right, "category", "relation" if i == 0 else ""))
    answers = [{"row": r, "looked": False} for r in rows]
    calibration = Calibration.fit([r.signals for r in rows[1:]], [r.right for r in rows[1:]])
    p = variants.VARIANTS["shipped"](answers)(answers)
    assert p[0] == 0.0  # a failed check: 0, as find gives it
    assert np.allclose(p[1:], [calibration.probability(r.signals) for r in rows[1:]], atol=1e-6)
    gated = variants.VARIANTS["gate absent ≥ 0.9"](answers)(answers)
    assert all(g == 0.0 for g, r in zip(gated, rows) if r.signals.absent >= 0.9)
    assert any(g > 0.5 for g, r in zip(gated, rows) if r.signals.absent < 0.9)
