#!/usr/bin/env bash
# Evaluate every ablation row (and the embedded model) on one freshly generated held-out set, clean and with
# noisy input layouts, then print the markdown table of docs/benchmarks.md.
#   training/scripts/ablation_eval.sh [scenes] [imagined scenes] [noise]     (defaults: 200 60 0.15)
set -euo pipefail
cd "$(dirname "$0")/../.."
SCENES=${1:-200}; IMAGINE=${2:-60}; NOISE=${3:-0.15}
data=runs/ablation/heldout
.venv/bin/echogen world --split heldout --seed 7 --count "${SCENES}" --out "${data}" --overwrite
for dir in runs/ablation/*/final; do
  row=$(basename "$(dirname "${dir}")")
  echo "== ${row}"
  .venv/bin/echogen eval --data "${data}" --model "${dir}" --imagine-limit "${IMAGINE}" --json > "runs/ablation/${row}/eval.json"
  .venv/bin/echogen eval --data "${data}" --model "${dir}" --imagine-limit "${IMAGINE}" --noise "${NOISE}" --json \
    > "runs/ablation/${row}/eval_noisy.json"
done
PYTHONPATH=training .venv/bin/python -m experiments.ablation_table runs/ablation
