#!/bin/bash
# Train (or resume) the next built-in model with the recipe in
# models/next/train.json, a few hours per session, and keep its resume point
# in the repository so the next session continues it exactly.
#
#   scripts/train-next.sh [MINUTES]        default: until the recipe's epochs are done
#   env: CASES     folder of cases (default ../shared/data/cases)
#        RUN       working run folder (default ../runs/next; created from
#                  KEEP when missing)
#        KEEP      where the resume point is kept in the repository
#                  (default models/next/run)
#        CONFIG    the recipe (default models/next/train.json)
#        NETWORK   network config JSON (default: the fast preset), e.g.
#                  models/wide/network.json
#        VALIDATION  held-out case validated during training (default
#                  ircadb01-01; "none": train on every case, as the final
#                  built-in model is, choosing its last checkpoint)
#        CACHE     pre-processing cache (default ../runs/cache; never in the repo:
#                  it is derived from the shared CTs)
#        LIVERSEG  the binary (default target/release/liverseg, copied so a
#                  rebuild during the run does not change it)
#
# Held out for progress by default: 3D-IRCADb-01 patient 1 (validation every
# 2 epochs). The final model on all the shared CTs:
#   RUN=../runs/final KEEP=models/final/run VALIDATION=none scripts/train-next.sh
# Run it with nice in the background, e.g.
#   nohup nice -n 10 scripts/train-next.sh 150 > ../runs/next.log 2>&1 &
# and before the session ends: scripts/train-next.sh --save (copies the resume
# point and a log summary into models/next/run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
CASES=${CASES:-$root/../shared/data/cases}
RUN=${RUN:-$root/../runs/next}
CACHE=${CACHE:-$root/../runs/cache}
KEEP=${KEEP:-$root/models/next/run}
CONFIG=${CONFIG:-$root/models/next/train.json}
VALIDATION=${VALIDATION:-ircadb01-01}
save() {
  mkdir -p "$KEEP"
  for f in last.lsm last.optim.bpk state.json best.lsm hard.json; do
    [ -f "$RUN/$f" ] && cp "$RUN/$f" "$KEEP/$f.tmp" && mv "$KEEP/$f.tmp" "$KEEP/$f"
  done
  # With average_last_epochs the epochs kept so far are part of the resume
  # point: a run resumed without them fails at the end naming the missing one.
  for f in "$RUN"/epoch-*.lsm; do
    [ -f "$f" ] && cp "$f" "$KEEP/$(basename "$f").tmp" && mv "$KEEP/$(basename "$f").tmp" "$KEEP/$(basename "$f")"
  done
  # Everything but the per-step lines: sub-epoch losses, validations, events.
  grep -v '"event":"step"' "$RUN/train.jsonl" > "$KEEP/train-summary.jsonl.tmp" && mv "$KEEP/train-summary.jsonl.tmp" "$KEEP/train-summary.jsonl"
  echo "saved the resume point and the log summary into $KEEP"
}
if [ "${1:-}" = "--save" ]; then save; exit 0; fi
[ -d "$CASES" ] || { echo "$CASES: no such folder of cases" >&2; exit 2; }
LIVERSEG=${LIVERSEG:-$root/target/release/liverseg}
[ -x "$LIVERSEG" ] || { echo "build first: cargo build --release -p liverseg" >&2; exit 2; }
mkdir -p "$RUN" "$CACHE"
bin="$RUN/liverseg-bin"
cp "$LIVERSEG" "$bin.tmp" && mv "$bin.tmp" "$bin"
resume=()
if [ -f "$RUN/state.json" ]; then
  resume=(--resume)
elif [ -f "$KEEP/state.json" ]; then
  cp "$KEEP"/last.lsm "$KEEP"/last.optim.bpk "$KEEP"/state.json "$RUN"/
  for f in "$KEEP"/epoch-*.lsm; do [ -f "$f" ] && cp "$f" "$RUN/"; done
  for f in best.lsm hard.json; do [ -f "$KEEP/$f" ] && cp "$KEEP/$f" "$RUN/"; done
  [ -f "$KEEP/train-summary.jsonl" ] && cp "$KEEP/train-summary.jsonl" "$RUN/train.jsonl"
  resume=(--resume)
fi
net=(--preset fast)
[ -n "${NETWORK:-}" ] && net=(--network "$NETWORK")
validation=(--validation "$VALIDATION")
[ "$VALIDATION" = none ] && validation=()
minutes=()
if [ -n "${1:-}" ]; then
  # --max-minutes counts over resumes: add this session's minutes to those done.
  done_min=$(grep -o '"minutes": *[0-9.]*' "$RUN/state.json" 2>/dev/null | grep -o '[0-9.]*$' || echo 0)
  minutes=(--max-minutes "$(echo "${done_min:-0} + $1" | bc)")
fi
"$bin" train "$CASES" -o "$RUN" --config "$CONFIG" "${net[@]}" \
  "${validation[@]}" --cache "$CACHE" "${resume[@]}" "${minutes[@]}"
save
