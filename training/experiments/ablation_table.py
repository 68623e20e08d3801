"""Print the ablation table (markdown) of docs/benchmarks.md from runs/ablation/<row>/:
row.json ({"title", "i2l_batches", "l2i_batches", "extra_steps", "wall_min"}), eval.json and eval_noisy.json
(`echogen eval --json`, clean and with --noise) and l2i.json (experiments.l2i_nll).

    python -m experiments.ablation_table runs/ablation
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ORDER = ("grounding_only_1200", "grounding_only", "generation_only", "naive_joint", "pmtp", "pmtp_djo",
         "pmtp_djo_cycle_rl")  # fmt: skip


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def main(root: Path) -> int:
    print("| row | I2L / L2I batches (+ DJO / RL steps) | train min | Acc@0.5 | mAcc | held-out L2I token CE "
          "| layout AP50 | cycle IoU | cycle failures | noisy cycle IoU | noisy failures |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    names = [n for n in ORDER if (root / n / "row.json").is_file()]
    names += sorted(p.parent.name for p in root.glob("*/row.json") if p.parent.name not in names)
    for name in names:
        run = root / name
        row, clean, noisy, l2i = (_load(run / f) for f in ("row.json", "eval.json", "eval_noisy.json", "l2i.json"))
        budget = f"{row.get('i2l_batches', 0)} / {row.get('l2i_batches', 0)}"
        if row.get("extra_steps"):
            budget += f" (+ {row['extra_steps']})"
        cycle, noisy_cycle = clean.get("cycle", {}), noisy.get("cycle", {})
        cells = [
            row.get("title", name),
            budget,
            f"{row['wall_min']:.0f}" if "wall_min" in row else "—",
            f"{clean['grounding']['acc@0.5']:.3f}" if clean else "—",
            f"{clean['grounding']['macc']:.3f}" if clean else "—",
            f"{l2i['l2i_ce']:.2f}" if l2i else "—",
            f"{clean['layout_to_image']['ap50']:.3f}" if clean else "—",
            f"{cycle['mean_iou']:.3f}" if cycle else "—",
            f"{cycle['failure_rate']:.3f}" if cycle else "—",
            f"{noisy_cycle['mean_iou']:.3f}" if noisy_cycle else "—",
            f"{noisy_cycle['failure_rate']:.3f}" if noisy_cycle else "—",
        ]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/ablation")))
