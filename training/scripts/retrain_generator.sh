#!/usr/bin/env bash
# Teach a model's generator a new image tokenizer: after `echogen-train transplant-tokenizer` (a finer grid,
# or the same VQ read at a larger --image-size) and a VQ stage at that size, the language model has to learn
# to write the new code sequence. The recipe that retrained the embedded model's generator for its 16 × 16 tokenizer
# (docs/benchmarks.md, "how the embedded model was trained"), in three PMTP runs from tabletop_pmtp.yaml:
#
#   gen     the generation path alone (model.generation_only, L2I only): the fresh code-facing weights learn
#           without their gradients reaching the language model, which grounds;
#   joint   full PMTP (L2I and I2L every step, hue-turned and faded grounding frames);
#   anneal  the same at half the learning rate.
#
# The vision encoder stays fixed (the config's model.freeze_vision): the embedded model's encoder was trained
# last, alone, on hue-turned, faded and tokenizer-quality frames, and joint PMTP would train it on less.
# The 16 × 16 retraining trained it along (model.freeze_vision=false), before those encoder runs.
#
#   training/scripts/retrain_generator.sh MODEL RUNS_DIR TRAIN_SECONDS [key=value ...]
#
# Each run gets a share of TRAIN_SECONDS (run.time_budget_s fits its max_steps after warm-up, so each LR
# schedule still ends annealed); the result is RUNS_DIR/anneal/final. key=value overrides go to every run,
# after the script's own.
#
# Environment (all optional):
#   PYTHON   the interpreter with torch and the two packages (default: the checkout's .venv/bin/python when
#            it exists, else python3); the checkout's sources come first on its PYTHONPATH
#   WORKERS  input processes (default: cores - 2, at least 1)
#   BATCH    batch size of every run (128)
#   SHARES   "gen joint anneal" fractions of TRAIN_SECONDS (default "0.12 0.44 0.44")
set -uo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 MODEL RUNS_DIR TRAIN_SECONDS [key=value ...]" >&2
  exit 2
fi
model=$(realpath -m "$1") runs=$(realpath -m "$2")
root=$(realpath -m "$(dirname "$0")/../..")
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x "$root/.venv/bin/python" ]; then PY=$root/.venv/bin/python; else PY=python3; fi
fi
if [[ $PY == */* ]]; then PY=$(realpath -ms "$PY"); fi  # -s: a venv's python is a symlink
# the three runs' budgets in seconds; a budget of 0 would mean none at all to the trainer, so each must be > 0
if ! budgets=$("$PY" - "$3" "${SHARES:-0.12 0.44 0.44}" 2>&1 <<'EOF_PY'
import sys
got = f"got TRAIN_SECONDS '{sys.argv[1]}', SHARES '{sys.argv[2]}'"
try:
    total, shares = float(sys.argv[1]), [float(s) for s in sys.argv[2].split()]
except ValueError:
    sys.exit(f"TRAIN_SECONDS must be a number of seconds and SHARES three numbers; {got}")
if len(shares) != 3 or not 0 < total < float("inf") or min(round(total * s, 1) for s in shares) <= 0:
    sys.exit(f"TRAIN_SECONDS must be > 0 and SHARES three fractions giving each run at least 0.1 s; {got}")
print(*(round(total * s, 1) for s in shares))
EOF_PY
); then
  echo "$0: $budgets" >&2
  exit 2
fi
read -r -a budget_of <<<"$budgets"
shift 3
if [ ! -f "$model/echogen.json" ]; then
  echo "$0: $model is not a model directory (no echogen.json)" >&2
  exit 2
fi
cd "$root"
export PYTHONPATH="$PWD:$PWD/training${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
workers=${WORKERS:-$(($(nproc) > 3 ? $(nproc) - 2 : 1))}
runs_=(gen joint anneal)
declare -A extra=(
  [gen]="model.generation_only=true pmtp.tasks=[l2i] optim.lr=1.0e-3 optim.warmup_steps=50"
  [joint]="pmtp.recolour=0.5 pmtp.desaturate=0.3 optim.lr=4.0e-4 optim.warmup_steps=100"
  [anneal]="pmtp.recolour=0.5 pmtp.desaturate=0.3 optim.lr=2.0e-4 optim.warmup_steps=50"
)
mkdir -p "$runs"
prev=$model
for i in "${!runs_[@]}"; do
  name=${runs_[$i]}
  budget=${budget_of[$i]}
  read -r -a own <<<"${extra[$name]}"
  echo "== ${name}: $(date -u +%FT%TZ) budget ${budget} s, batch ${BATCH:-128}, ${workers} input workers"
  if ! "$PY" -m echogen_training pmtp --config training/echogen_training/configs/tabletop_pmtp.yaml \
      model.init="$prev" run.out="$runs/$name" model.image_positions=true model.layout_map=true "${own[@]}" \
      data.batch_size="${BATCH:-128}" data.workers="$workers" data.seed=$((60 + i)) run.seed=$((50 + i)) \
      run.time_budget_s="$budget" optim.max_steps=1000000 eval.every=1000000 run.save_every=1000 \
      run.log_every=50 run.progress=false "$@"; then
    echo "== ${name} failed; ${prev} is the last finished model" >&2
    exit 1
  fi
  prev="$runs/$name/final"
done
echo "== finished: $(date -u +%FT%TZ); the model: $prev"
