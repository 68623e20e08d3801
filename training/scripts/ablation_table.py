"""Print the ablation table (markdown) from runs/ablation/<row>/eval.json and eval_noisy.json.

python training/scripts/ablation_table.py runs/ablation
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = [
    ("grounding_only", "grounding-only (I2L)"),
    ("generation_only", "generation-only (L2I)"),
    ("naive_joint", "naive joint (tasks alternate)"),
    ("pmtp", "PMTP"),
    ("pmtp_djo", "PMTP + DJO"),
    ("pmtp_djo_cycle_rl", "PMTP + DJO + Cycle RL"),
]


def wall_minutes(run: Path) -> float | None:
    """Training wall time of a row: the last train record's time_s."""
    lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").is_file() else []
    times = [json.loads(line)["time_s"] for line in lines if '"split": "train"' in line]
    return times[-1] / 60 if times else None


def main(root: Path) -> int:
    print(
        "| row | train min | Acc@0.5 | mAcc | layout AP50 | AP | cycle IoU | cycle failures | noisy cycle IoU "
        "| noisy failures |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, title in ROWS:
        run = root / name
        if not (run / "eval.json").is_file():
            continue
        clean = json.loads((run / "eval.json").read_text())
        noisy = json.loads((run / "eval_noisy.json").read_text()) if (run / "eval_noisy.json").is_file() else {}
        minutes = wall_minutes(run)
        cells = [
            title,
            f"{minutes:.0f}" if minutes is not None else "—",
            f"{clean['grounding']['acc@0.5']:.3f}",
            f"{clean['grounding']['macc']:.3f}",
            f"{clean['layout_to_image']['ap50']:.3f}",
            f"{clean['layout_to_image']['ap']:.3f}",
            f"{clean['cycle']['mean_iou']:.3f}",
            f"{clean['cycle']['failure_rate']:.3f}",
            f"{noisy['cycle']['mean_iou']:.3f}" if noisy else "—",
            f"{noisy['cycle']['failure_rate']:.3f}" if noisy else "—",
        ]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/ablation")))
