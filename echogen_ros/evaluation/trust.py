"""Whether what the grounder says can be trusted, measured on world scenes: for every referring expression (its
referent is there) and every no-target expression (nothing there is what it names), the signals of the best
box (`finding.signals`), whether it passes the answer checks (`finding.check_failures`: a box that fails one
gets probability 0, as `find` gives it) and whether that box is right (IoU ≥ 0.5 with the referent; never,
without one).

`report` turns rows and a calibration into what issue 34 asks of it: expected calibration error, the AUROC
of right against wrong, the reliability table, no-target accuracy (not found), the present referents'
Acc@0.5 (the box, whatever its confidence) and the share of them found and right at the threshold, each also
by expression kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from echogen_ros.evaluation.calibration import auroc, ece, reliability
from echogen_ros.model.confidence import Calibration, Signals
from echogen_ros.model.finding import CHECKS, DEFAULT_THRESHOLD, check_failures, encode, look, probability, signals
from echogen_ros.model.layout import box_iou
from echogen_ros.world.dataset import world_sample
from echogen_ros.world.scene import SceneConfig


@dataclass(frozen=True)
class Row:
    signals: Signals
    present: bool  # the expression has a referent
    right: bool  # the best box is the referent (IoU ≥ 0.5); False for every no-target expression
    kind: str  # the expression's kind (category, attribute, ordinal, relation, size)
    failed_check: str = ""  # the answer check the best box failed (a name of `finding.CHECKS`): p = 0


@torch.inference_mode()
def collect(
    model,
    split: str,
    scenes: int,
    seed: int = 0,
    first: int = 0,
    config: SceneConfig | Callable[[int], SceneConfig] | None = None,
) -> list[Row]:
    """Rows for every expression, present and no-target, of scenes first..first+scenes-1 of `split` (drawn
    with `config`: object scales, clutter; or with `config(index)` per scene)."""
    rows = []
    for index in range(first, first + scenes):
        sample = world_sample(seed, index, split, config(index) if callable(config) else config)
        image, boxes = sample.image(), sample.boxes()
        frame = encode(model, image)
        for e in [*sample.expressions, *sample.absent]:
            found, absent = look(model, frame, e.text, 2)
            right = e.target is not None and box_iou(found[0].box, boxes[e.target]) >= 0.5
            failed = check_failures(model, image, frame.features, frame.letterbox, e.text, [found[0].box])[0][0]
            rows.append(Row(signals(found, absent, image.shape[:2])[0], e.target is not None, right, e.kind, failed))
    return rows


def compared(rows: list[Row], calibration: Calibration | None, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """`report` with `calibration`, and under "raw_score" what the uncalibrated score gives (no reliability)."""
    raw = report(rows, None, threshold)
    plain = {k: v for k, v in raw.items() if k not in ("reliability", "by_kind")}
    return {**report(rows, calibration, threshold), "raw_score": plain}


def report(rows: list[Row], calibration: Calibration | None, threshold: float = DEFAULT_THRESHOLD) -> dict:
    p = np.array([0.0 if r.failed_check else probability(calibration, r.signals) for r in rows])
    return {**measured(rows, p, threshold), "calibrated": calibration is not None}


def measured(rows: list[Row], p: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """`report`'s figures of `rows` answered with probabilities `p` (one per row; a failed check's 0 included)."""
    right = np.array([r.right for r in rows])
    present = np.array([r.present for r in rows])
    found = p >= threshold
    return {
        "answers": len(rows),
        "present": int(present.sum()),
        "no_target": int((~present).sum()),
        "threshold": threshold,
        "ece": ece(p, right),
        "auroc": auroc(p, right),
        "present_ece": ece(p[present], right[present]),
        "present_auroc": auroc(p[present], right[present]),
        "acc@0.5": float(right[present].mean()),  # the box, whatever its confidence
        "found_and_right": float((found & right)[present].mean()),  # acted on, and right
        "found_but_wrong": float((found & ~right).mean()),  # acted on, and wrong: what a planner must not get
        "checks_failed": {check: int(sum(r.failed_check == check for r in rows)) for check in CHECKS},  # p = 0
        "no_target_accuracy": float((~found[~present]).mean()),
        "reliability": reliability(p, right),
        "by_kind": by_kind(rows, found),
    }


def by_kind(rows: list[Row], found: np.ndarray) -> dict:
    """Per expression kind: with a referent, Acc@0.5 and the shares found and right / acted on but wrong;
    without one, the share not found (where the no-target misses are: relations no object satisfies, ...)."""
    out: dict[str, dict] = {}
    for kind in sorted({r.kind for r in rows}):
        with_one = [(f, r.right) for r, f in zip(rows, found) if r.kind == kind and r.present]
        without = [f for r, f in zip(rows, found) if r.kind == kind and not r.present]
        entry = {}
        if with_one:
            f, right = np.array(with_one).T
            entry.update(present=len(with_one), acc50=float(right.mean()), found_and_right=float((f & right).mean()),
                         found_but_wrong=float((f & ~right).mean()))  # fmt: skip
        if without:
            entry.update(no_target=len(without), not_found=float(1 - np.mean(without)))
        out[kind] = entry
    return out
