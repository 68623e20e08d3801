#!/usr/bin/env bash
# The ablation table of docs/benchmarks.md, at a scale this 2-core CPU trains in one session: a smaller world
# (1-4 objects, each × 1.3-2.0 of the catalogue's size) and the 64 px `tabletop` preset (8×8 image tokens).
#   training/scripts/ablation.sh pretrain                       the shared pre-trained components
#   training/scripts/ablation.sh rows SEED [T] [DJO] [RL]       every row for one seed (defaults: 1400 25 20)
#   training/scripts/ablation_eval.sh                           evaluate every row, print the table
# `pretrain` trains the vision encoder + aligner and the VQ tokenizer once (what Janus-Pro's SigLIP and VQ are
# to the paper's runs); every row of every seed starts from them. Each row gets the same compute, counted
# in PMTP-step units of one forward + backward of one task on a batch of 32 ("task-batches"): grounding-only
# and generation-only train one task T steps, naive joint alternates the tasks for T steps, PMTP trains both
# every step for T/2 steps. The DJO and Cycle RL rows replace PMTP's last steps by as much of their stage as
# costs the same: a DJO step (free-running, batch 16) took DJO_COST PMTP steps' time and a Cycle RL step
# RL_COST / 2 of them on one core of this CPU (measured 2026-12-06: 5.9 s, 3.5 s and 1.37 s a step), so the
# PMTP+DJO row continues PMTP's step T/2 - DJO·DJO_COST checkpoint. Learning rates are constant after warm-up
# (optim.min_lr_ratio=1) in every row, so a checkpoint of the PMTP run is the same as a shorter PMTP run. Every
# row's generator reads the shipped model's inputs (image-token positions and the layout map, `model.*`).
# The single-task runs' step T/2 checkpoints are two rows more (`*_half`: the same batches of their task as PMTP had).
# ROWS="pmtp pmtp_djo" trains only the rows named (e.g. another seed of some rows). Rows resume when rerun; finished rows are skipped. OMP_NUM_THREADS=1 per seed lets two seeds share the CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
source training/scripts/ablation_common.sh
DJO_COST=${DJO_COST:-4}; RL_COST=${RL_COST:-5}
configs=training/echogen_training/configs
world=("data.min_objects=${MIN_OBJECTS}" "data.max_objects=${MAX_OBJECTS}" "data.scale_range=[${SCALE_LO},${SCALE_HI}]")

train() {  # out stage config overrides...
  local out=$1 stage=$2 config=$3; shift 3
  if [ -n "${ROWS:-}" ] && [[ " ${ROWS} " != *" $(basename "${out}") "* ]]; then return; fi
  if [ -f "${out}/final/echogen.json" ]; then echo "== ${out}: done already"; return; fi
  echo "== ${out}: $(date -u +%FT%TZ)"
  .venv/bin/echogen-train "${stage}" --config "${configs}/${config}" run.progress=false "run.out=${out}" \
    eval.every=0 "${world[@]}" "$@"
}

step_dir() {  # run step: the model of that run's checkpoint
  printf '%s/checkpoints/step_%08d/model' "$1" "$2"
}

case ${1:-} in
  pretrain)
    train "${ROOT}/vision" vision tabletop_vision.yaml
    train "${ROOT}/vq" vq tabletop_vq.yaml "model.init=${ROOT}/vision/final"
    ;;
  rows)
    SEED=${2:?rows SEED [T] [DJO] [RL]}; T=${3:-1400}; DJO=${4:-25}; RL=${5:-20}
    half=$((T / 2)); djo_from=$((half - DJO * DJO_COST)); rl_from=$((djo_from - RL * RL_COST / 2))
    out=${ROOT}/seed${SEED}; init=${ROOT}/vq/final
    mkdir -p "${out}"  # the plan is what the table's compute column says
    printf '{"steps": %d, "djo": %d, "rl": %d, "djo_from": %d, "rl_from": %d}\n' \
      "${T}" "${DJO}" "${RL}" "${djo_from}" "${rl_from}" > "${out}/plan.json"
    row=(optim.min_lr_ratio=1.0 "run.seed=${SEED}" "data.seed=$((100 + SEED))" run.save_every=50 run.keep_every=50
         model.image_positions=true model.layout_map=true)
    train "${out}/pmtp" pmtp tabletop_pmtp.yaml "model.init=${init}" "${row[@]}" "optim.max_steps=${half}"
    train "${out}/pmtp_djo" djo tabletop_djo.yaml "model.init=$(step_dir "${out}/pmtp" "${djo_from}")" "${row[@]}" \
      "data.seed=$((200 + SEED))" "optim.max_steps=${DJO}"
    train "${out}/djo_for_rl" djo tabletop_djo.yaml "model.init=$(step_dir "${out}/pmtp" "${rl_from}")" "${row[@]}" \
      "data.seed=$((200 + SEED))" "optim.max_steps=${DJO}"
    train "${out}/pmtp_djo_cycle_rl" cycle_rl tabletop_cycle_rl.yaml "model.init=${out}/djo_for_rl/final" "${row[@]}" \
      "data.seed=$((300 + SEED))" "optim.max_steps=${RL}"
    train "${out}/grounding_only" pmtp tabletop_pmtp.yaml "model.init=${init}" "${row[@]}" "pmtp.tasks=[i2l]" \
      "optim.max_steps=${T}"
    train "${out}/generation_only" pmtp tabletop_pmtp.yaml "model.init=${init}" "${row[@]}" "pmtp.tasks=[l2i]" \
      "optim.max_steps=${T}"
    train "${out}/naive_joint" pmtp tabletop_pmtp.yaml "model.init=${init}" "${row[@]}" pmtp.schedule=alternate \
      "optim.max_steps=${T}"
    for task in grounding_only generation_only; do  # the single-task rows at the batches of that task PMTP had
      model=$(step_dir "${task}" "${half}")
      [ -d "${out}/${model}" ] || continue  # not trained (ROWS)
      mkdir -p "${out}/${task}_half"
      ln -sfn "../${model}" "${out}/${task}_half/final"
    done
    echo "== seed ${SEED} trained: $(date -u +%FT%TZ)"
    ;;
  *) echo "usage: $0 pretrain | rows SEED [T] [DJO] [RL]" >&2; exit 2 ;;
esac
