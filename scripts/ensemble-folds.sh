#!/bin/bash
# Leave-one-out evaluation of an ensemble: each held-out case is segmented with
# the fold models of several leave-one-out runs at once (`segment --model A
# --model B ...`: probabilities averaged), then evaluated against its reference. Trains nothing; every member is
# the fold's own model (trained without the held-out case), so the ensemble
# chooses nothing on it either.
#
#   scripts/ensemble-folds.sh OUT FOLDS_A [FOLDS_B ...]
#   FOLDS_*  a leave-one-out output folder or a kept copy (models/*/folds):
#            <case>/run/best.lsm per fold; with one folder, each fold's
#            model alone (to measure a `segment` option on the folds)
#   env: CASES     folder of cases (default ../shared/data/cases)
#        THRESHOLD probability threshold (default 0.5, the method's and the
#                  recipes'; not the members' own: fold models of older builds
#                  carry the threshold searched on their training cases there)
#        LIVERSEG  the binary (default target/release/liverseg)
#        FLIPS     segment's --flip-average (default xy, segment's own): with
#                  two members, x keeps the network passes at segment's four
#        SEGMENT_ARGS more `segment` options, e.g. "--fill-holes axial"
#
# Only cases with a finished model in every FOLDS_* are done (below).
# Results: OUT/<case>/ (segment's output), OUT/summary/ (evaluate --pairs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 OUT FOLDS_A [FOLDS_B ...]" >&2; exit 2; }
OUT=$1; shift
CASES=${CASES:-$root/../shared/data/cases}
LIVERSEG=${LIVERSEG:-$root/target/release/liverseg}
[ -x "$LIVERSEG" ] || { echo "build first: cargo build --release -p liverseg" >&2; exit 2; }
[ -d "$CASES" ] || { echo "$CASES: no such folder of cases" >&2; exit 2; }
for f in "$@"; do [ -d "$f" ] || { echo "$f: no such folder of folds" >&2; exit 2; }; done

# A fold is finished when best.lsm is its run's final model: train writes
# `"epochs": N` into the header of the final model only (a validated run's
# best.lsm written on the way has none), and N must be the epochs state.json
# says are done (a run resumed for more epochs is not finished again yet).
finished() {
  local run=$1/run
  [ -f "$run/best.lsm" ] && [ -f "$run/state.json" ] || return 1
  local done total
  done=$(grep -o '"epochs_done": *[0-9]*' "$run/state.json" | grep -o '[0-9]*$')
  total=$("$LIVERSEG" info "$run/best.lsm" --json | grep -o '"epochs": *[0-9]*' | head -1 | grep -o '[0-9]*$' || true)
  [ -n "$total" ] && [ "$done" -eq "$total" ]
}

th=(--threshold "${THRESHOLD:-0.5}" --flip-average "${FLIPS:-xy}")
read -r -a extra <<< "${SEGMENT_ARGS:-}"
mkdir -p "$OUT/reference" "$OUT/segmented"
n=0
for ct in "$CASES"/*/ct.nii.gz; do
  c=$(basename "$(dirname "$ct")")
  models=()
  for f in "$@"; do
    if finished "$f/$c"; then models+=(--model "$f/$c/run/best.lsm"); else models=(); break; fi
  done
  [ ${#models[@]} -gt 0 ] || continue
  echo "fold $c: segmenting with $(( ${#models[@]} / 2 )) models ($(date +%T))"
  "$LIVERSEG" segment "$ct" -o "$OUT/$c" "${models[@]}" "${th[@]}" ${extra[@]+"${extra[@]}"} --no-overview --force --json > "$OUT/$c.report.json"
  ln -sfn "$CASES/$c/liver.nii.gz" "$OUT/reference/$c.nii.gz"
  ln -sfn "$(cd "$OUT/$c" && pwd)/liver.nii.gz" "$OUT/segmented/$c.nii.gz"
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "no case has a finished model in every folder given" >&2; exit 3; }
"$LIVERSEG" evaluate --pairs "$OUT/reference" "$OUT/segmented" --out "$OUT/summary"
