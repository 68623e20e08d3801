#!/usr/bin/env bash
# The embedded tabletop model in a fixed wall-clock budget (a GPU lease, a night on a workstation):
# vision → vq → pmtp → djo → cycle_rl from the tabletop configs, each stage given a share of the budget
# (run.time_budget_s fits its max_steps after warm-up, so every LR schedule still ends annealed), with
# GPU-sized batches and data.workers processes rendering the world ahead of the step. After each of
# pmtp, djo and cycle_rl the model so far is shipped (16-bit, with provenance; `echogen-train ship`) to
# SHIP_DIR, so a run cut short still leaves a usable model. SHIP_DIR must be new, empty, or a model this
# recipe shipped before (it is replaced); the installed package is never written (ship it there yourself:
# `echogen-train ship SHIP_DIR --runs RUNS_DIR --into-package`).
#
#   training/scripts/train_tabletop_timed.sh RUNS_DIR SHIP_DIR TRAIN_SECONDS [overrides for every stage]
#
# Environment (all optional):
#   PYTHON   the interpreter with torch and the two packages (default: the checkout's .venv/bin/python when
#            it exists, else python3); the checkout's sources come first on its PYTHONPATH
#   PRESET   the model the vision stage creates: tabletop (default), tabletop-256 or tabletop-fine
#   WORKERS  input processes per stage (default: cores - 2, at least 1)
#   VISION_BATCH VQ_BATCH PMTP_BATCH DJO_BATCH RL_BATCH   batch size per stage (128 64 128 64 16)
#   SHARES   "vision vq pmtp djo cycle_rl" fractions of TRAIN_SECONDS (default "0.12 0.23 0.47 0.09 0.09")
# Stage start-up, final evaluations and shipping come on top of TRAIN_SECONDS (about 15 s per stage on a GPU).
set -uo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 RUNS_DIR SHIP_DIR TRAIN_SECONDS [key=value ...]" >&2
  exit 2
fi
if ! [[ $3 =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "$0: TRAIN_SECONDS must be a number of seconds, got '$3'" >&2
  exit 2
fi
runs=$(realpath -m "$1") ship=$(realpath -m "$2") total=$3
shift 3
root=$(realpath -m "$(dirname "$0")/../..")
if [ -d "$ship" ] && [ -n "$(ls -A "$ship")" ] && [ ! -f "$ship/.echogen-output" ]; then
  echo "$0: SHIP_DIR $ship holds files echogen did not write; give a new or empty directory" >&2
  exit 2
fi
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x "$root/.venv/bin/python" ]; then PY=$root/.venv/bin/python; else PY=python3; fi
fi
if [[ $PY == */* ]]; then PY=$(realpath -ms "$PY"); fi  # -s: a venv's python is a symlink
cd "$root"
export PYTHONPATH="$PWD:$PWD/training${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
workers=${WORKERS:-$(($(nproc) > 3 ? $(nproc) - 2 : 1))}
read -r -a shares <<<"${SHARES:-0.12 0.23 0.47 0.09 0.09}"
stages=(vision vq pmtp djo cycle_rl)
declare -A batch=([vision]=${VISION_BATCH:-128} [vq]=${VQ_BATCH:-64} [pmtp]=${PMTP_BATCH:-128}
                  [djo]=${DJO_BATCH:-64} [cycle_rl]=${RL_BATCH:-16})
configs=training/echogen_training/configs
mkdir -p "$runs" "$ship"
prev=${PRESET:-tabletop}
for i in "${!stages[@]}"; do
  stage=${stages[$i]}
  budget=$("$PY" -c "print(round(${total} * ${shares[$i]}, 1))")
  out="$runs/tabletop_${stage}"
  size=(data.batch_size="${batch[$stage]}")
  if [ "$stage" = cycle_rl ]; then size=(data.batch_size="${batch[$stage]}" cycle_rl.layouts_per_step="${batch[$stage]}"); fi
  echo "== ${stage}: $(date -u +%FT%TZ) budget ${budget} s, batch ${batch[$stage]}, ${workers} input workers"
  if ! "$PY" -m echogen_training "$stage" --config "$configs/tabletop_${stage}.yaml" \
      model.init="$prev" run.out="$out" "${size[@]}" data.workers="$workers" \
      run.time_budget_s="$budget" optim.max_steps=1000000 eval.every=1000000 run.save_every=1000 \
      run.log_every=50 run.progress=false "$@"; then
    echo "== ${stage} failed; the last shipped model stays in ${ship}" >&2
    exit 1
  fi
  prev="$out/final"
  case $stage in
    pmtp | djo | cycle_rl)
      "$PY" -m echogen_training ship "$prev" --runs "$runs" --out "$ship" --overwrite || exit 1 ;;
  esac
done
echo "== finished: $(date -u +%FT%TZ); shipped: $ship"
