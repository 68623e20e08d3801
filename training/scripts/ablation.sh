#!/usr/bin/env bash
# The ablation table of docs/benchmarks.md: every row starts from the same pre-trained components (vision
# encoder + VQ tokenizer: runs/tabletop_vq/final) and gets the same number of task-batches T (one forward +
# backward of one task on one batch): grounding-only and generation-only train one task T steps, naive joint
# alternates the tasks for T steps, PMTP trains both every step for T/2 steps. The DJO and Cycle RL rows
# continue the PMTP row (their extra wall time is reported with the table).
#   training/scripts/ablation.sh [T] [DJO steps] [Cycle RL steps]     (defaults: 1200 100 50)
# Each row resumes when rerun; rows finished already are skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
T=${1:-1200}; DJO=${2:-100}; RL=${3:-50}
configs=training/echogen_training/configs
init=runs/tabletop_vq/final
train() {  # name stage config overrides...
  local name=$1 stage=$2 config=$3; shift 3
  if [ -f "runs/ablation/${name}/final/echogen.json" ]; then echo "== ${name}: done already"; return; fi
  echo "== ${name}: $(date -u +%FT%TZ)"
  .venv/bin/echogen-train "${stage}" --config "${configs}/${config}" run.progress=false \
    "run.out=runs/ablation/${name}" eval.every=0 run.save_every=100 "$@"
}
train grounding_only pmtp tabletop_pmtp.yaml "model.init=${init}" "pmtp.tasks=[i2l]" "optim.max_steps=${T}"
train generation_only pmtp tabletop_pmtp.yaml "model.init=${init}" "pmtp.tasks=[l2i]" "optim.max_steps=${T}"
train naive_joint pmtp tabletop_pmtp.yaml "model.init=${init}" pmtp.schedule=alternate "optim.max_steps=${T}"
train pmtp pmtp tabletop_pmtp.yaml "model.init=${init}" "optim.max_steps=$((T / 2))"
train pmtp_djo djo tabletop_djo.yaml model.init=runs/ablation/pmtp/final "optim.max_steps=${DJO}"
train pmtp_djo_cycle_rl cycle_rl tabletop_cycle_rl.yaml model.init=runs/ablation/pmtp_djo/final \
  "optim.max_steps=${RL}"
echo "== trained: $(date -u +%FT%TZ); evaluate with training/scripts/ablation_eval.sh"
