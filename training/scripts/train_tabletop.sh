#!/usr/bin/env bash
# The embedded tabletop model, stage by stage (each stage resumes if interrupted; rerun to continue).
#   training/scripts/train_tabletop.sh [extra key=value overrides applied to every stage]
# Add `torchrun --nproc_per_node N -m echogen_training` in place of `echogen-train` for several GPUs/CPUs.
set -euo pipefail
cd "$(dirname "$0")/../.."
configs=training/echogen_training/configs
for stage in vision vq pmtp djo cycle_rl; do
  if [ -f "runs/tabletop_${stage}/final/echogen.json" ]; then
    echo "== ${stage}: done already (runs/tabletop_${stage}/final)"; continue
  fi
  echo "== ${stage}: $(date -u +%FT%TZ)"
  .venv/bin/echogen-train "${stage}" --config "${configs}/tabletop_${stage}.yaml" run.progress=false "$@"
done
echo "== finished: $(date -u +%FT%TZ); final model: runs/tabletop_cycle_rl/final"
