"""Print the ablation table (markdown) of docs/benchmarks.md from the runs of training/scripts/ablation.sh:
ROOT/seed<N>/<row>/ with eval.json and eval_noisy.json (`echogen eval --json`, clean and with --noise),
l2i.json (experiments.l2i_nll), the runs' metrics.jsonl (wall time) and the seed's plan.json (its steps, as
ablation.sh chose them; every seed's must agree). A cell is the seeds' mean ± their
standard deviation (n seeds in the last column); a control line follows (what a trivial image gives the same
detector and grounder: the tokenizer's ceiling, an empty table's codes, another scene's codes, painted boxes).

    python -m experiments.ablation_table runs/ablation
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

TITLES = {
    "grounding_only_half": "grounding-only (I2L), PMTP's I2L batches",
    "grounding_only": "grounding-only (I2L)",
    "generation_only_half": "generation-only (L2I), PMTP's L2I batches",
    "generation_only": "generation-only (L2I)",
    "naive_joint": "naive joint (tasks alternate)",
    "pmtp": "PMTP (both tasks every step)",
    "pmtp_djo": "PMTP + DJO",
    "pmtp_djo_cycle_rl": "PMTP + DJO + Cycle RL",
}
CONTROLS = ("ceiling", "empty_table", "other_scene", "painted")


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _time_at(run: Path, step: int | None) -> float | None:
    """Seconds of training a run had logged at `step` (its last logged line when None)."""
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()] \
        if (run / "metrics.jsonl").is_file() else []  # fmt: skip
    lines = [x for x in lines if x.get("split") == "train" and "time_s" in x]
    if step is not None:
        lines = [x for x in lines if x["step"] <= step]
    return lines[-1]["time_s"] if lines else None


def _budget(plan: dict) -> dict[str, tuple[str, list[tuple[str, int | None]]]]:
    """Each row's compute in words and the runs (with the step used) its wall time adds up."""
    steps, djo, rl, djo_from, rl_from = (plan[k] for k in ("steps", "djo", "rl", "djo_from", "rl_from"))
    half = steps // 2
    return {
        "grounding_only_half": (f"{half} I2L (its step {half})", [("grounding_only", half)]),
        "grounding_only": (f"{steps} I2L", [("grounding_only", None)]),
        "generation_only_half": (f"{half} L2I (its step {half})", [("generation_only", half)]),
        "generation_only": (f"{steps} L2I", [("generation_only", None)]),
        "naive_joint": (f"{half} I2L + {half} L2I, alternating", [("naive_joint", None)]),
        "pmtp": (f"{half} PMTP steps (I2L + L2I)", [("pmtp", None)]),
        "pmtp_djo": (f"{djo_from} PMTP + {djo} DJO", [("pmtp", djo_from), ("pmtp_djo", None)]),
        "pmtp_djo_cycle_rl": (f"{rl_from} PMTP + {djo} DJO + {rl} RL",
                              [("pmtp", rl_from), ("djo_for_rl", None), ("pmtp_djo_cycle_rl", None)]),
    }  # fmt: skip


def _cell(values: list[float], digits: int = 3) -> str:
    if not values:
        return "—"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _metrics(clean: dict, noisy: dict, l2i: dict) -> dict[str, float]:
    out = {}
    if clean:
        out["acc"], out["macc"] = clean["grounding"]["acc@0.5"], clean["grounding"]["macc"]
        if "layout_to_image" in clean:
            out["ap50"] = clean["layout_to_image"]["ap50"]
            out["cycle"], out["fail"] = clean["cycle"]["mean_iou"], clean["cycle"]["failure_rate"]
    if noisy.get("cycle"):
        out["noisy_cycle"], out["noisy_fail"] = noisy["cycle"]["mean_iou"], noisy["cycle"]["failure_rate"]
    if l2i:
        out["l2i"] = l2i["l2i_ce"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, nargs="?", default=Path("runs/ablation"))
    args = parser.parse_args(argv)
    seeds = sorted(p for p in args.root.glob("seed*") if p.is_dir())
    plans = [_load(seed / "plan.json") for seed in seeds]
    if not plans or any(plan != plans[0] for plan in plans) or not plans[0]:
        print(
            f"{args.root}: every seed* folder needs the same plan.json (written by ablation.sh rows)", file=sys.stderr
        )
        return 2
    columns = ("acc", "macc", "l2i", "ap50", "cycle", "fail", "noisy_cycle", "noisy_fail")
    print("| row | compute (task-batches of 32; DJO batch 16) | train min | Acc@0.5 | mAcc | L2I token CE "
          "| layout AP50 | cycle IoU | cycle failures | noisy cycle IoU | noisy failures | seeds |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    controls: dict[str, dict[str, list[float]]] = {}
    for name, (budget, parts) in _budget(plans[0]).items():
        values: dict[str, list[float]] = {c: [] for c in columns}
        minutes, found = [], 0
        for seed in seeds:
            run = seed / name
            clean, noisy, l2i = (_load(run / f) for f in ("eval.json", "eval_noisy.json", "l2i.json"))
            if not clean:
                continue
            found += 1
            for key, value in _metrics(clean, noisy, l2i).items():
                values[key].append(value)
            times = [_time_at(seed / part, step) for part, step in parts]
            if all(t is not None for t in times):
                minutes.append(sum(times) / 60)
            if name == "pmtp":
                for control, report in clean.get("controls", {}).items():
                    entry = controls.setdefault(control, {})
                    entry.setdefault("ap50", []).append(report["layout_to_image"]["ap50"])
                    entry.setdefault("cycle", []).append(report["cycle"]["mean_iou"])
                    entry.setdefault("fail", []).append(report["cycle"]["failure_rate"])
        if not found:
            continue
        cells = [TITLES[name], budget, _cell(minutes, 0)] + [_cell(values[c], 2 if c == "l2i" else 3) for c in columns]
        print("| " + " | ".join(cells + [str(found)]) + " |")
    for control in CONTROLS:
        entry = controls.get(control)
        if entry:
            cells = [f"control: {control.replace('_', ' ')} (PMTP row's model)", "—", "—", "—", "—", "—",
                     _cell(entry["ap50"]), _cell(entry["cycle"]), _cell(entry["fail"]), "—", "—",
                     str(len(entry["ap50"]))]  # fmt: skip
            print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
