#!/usr/bin/env bash
# Issue 34's recipe for the embedded model, every step scripted (docs/benchmarks.md, 2026-12-05):
#
#   1. no-target  continue the embedded model with no-target expressions (configs/tabletop_no_target.yaml;
#                 resumes if interrupted, skipped when runs/no_target/final exists)
#   2. ship       16-bit, into the package, its run recorded under training.continuations
#   3. domain     fit the out-of-domain check on train renders, its threshold on val (echogen-train fit-domain)
#   4. calibrate  fit the confidence calibration on val, scored on test (echogen-train calibrate)
#
# The held-out split is read by none of them: report it afterwards with `echogen eval` (README, results).
#   training/scripts/trust_tabletop.sh [key=value overrides for the training run]
set -euo pipefail
cd "$(dirname "$0")/../.."
train=.venv/bin/echogen-train
if [ ! -f runs/no_target/final/echogen.json ]; then
  echo "== no-target: $(date -u +%FT%TZ)"
  $train pmtp --config training/echogen_training/configs/tabletop_no_target.yaml run.progress=false "$@"
fi
echo "== ship: $(date -u +%FT%TZ)"
$train ship runs/no_target/final --into-package --continuation runs/no_target
echo "== domain: $(date -u +%FT%TZ)"
$train fit-domain --model echogen_ros/model/default
echo "== calibrate: $(date -u +%FT%TZ)"
$train calibrate --model echogen_ros/model/default
echo "== finished: $(date -u +%FT%TZ); the embedded model is echogen_ros/model/default"
