#!/usr/bin/env bash
# Evaluate every row of training/scripts/ablation.sh on the ablation world's test split (seen compositions, new
# scenes; nothing is chosen by it), clean and with noisy input layouts, then print the markdown table of
# docs/benchmarks.md.
#   training/scripts/ablation_eval.sh [scenes] [imagined scenes] [noise]     (defaults: 200 60 0.15)
# SEEDS=seed0 evaluates one seed's rows (two such calls share the CPU); rows evaluated already are kept, and
# so is the drawn test world (${ROOT}/test_world: remove it to draw another size).
set -euo pipefail
cd "$(dirname "$0")/../.."
source training/scripts/ablation_common.sh
SCENES=${1:-200}; IMAGINE=${2:-60}; NOISE=${3:-0.15}
world=(--min-objects "${MIN_OBJECTS}" --max-objects "${MAX_OBJECTS}" --scale-range "${SCALE_LO}" "${SCALE_HI}")
data=${ROOT}/test_world
[ -f "${data}/annotations.json" ] || .venv/bin/echogen world --split test --seed 7 --count "${SCENES}" "${world[@]}" --out "${data}" --overwrite
for dir in "${ROOT}"/${SEEDS:-seed*}/*/final; do
  run=$(dirname "${dir}")
  [ "$(basename "${run}")" = djo_for_rl ] && continue  # a step inside the Cycle RL row, not a row
  [ -f "${run}/l2i.json" ] && { echo "== ${run}: evaluated already"; continue; }
  echo "== ${run}"
  .venv/bin/echogen eval --data "${data}" --model "${dir}" --imagine-limit "${IMAGINE}" --json > "${run}/eval.json.part"
  .venv/bin/echogen eval --data "${data}" --model "${dir}" --imagine-limit "${IMAGINE}" --noise "${NOISE}" --json \
    > "${run}/eval_noisy.json.part"
  PYTHONPATH=training .venv/bin/python -m experiments.l2i_nll "${dir}" --split test --scenes 64 "${world[@]}" \
    > "${run}/l2i.json.part"
  for f in eval eval_noisy l2i; do mv "${run}/${f}.json.part" "${run}/${f}.json"; done
done
PYTHONPATH=training .venv/bin/python -m experiments.ablation_table "${ROOT}"
