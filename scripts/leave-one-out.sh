#!/bin/bash
# Leave-one-out evaluation of the training recipe on a folder of cases
# (default ../shared/data/cases): for each case with a liver, train on all the
# others with no validation set (so the held-out case chooses neither the
# checkpoint nor the threshold), segment the held-out CT with that fold's
# model and evaluate it against its reference. Results: OUT/<case>/eval.json
# and OUT/summary (evaluate --pairs).
#
#   scripts/leave-one-out.sh [OUT]     env: CASES, MINUTES (per fold, 60),
#                                      CONFIG (train config JSON), LIVERSEG (binary)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-loo}
CASES=${CASES:-$root/../shared/data/cases}
MINUTES=${MINUTES:-60}
LIVERSEG=${LIVERSEG:-$root/target/release/liverseg}
[ -x "$LIVERSEG" ] || { echo "build first: cargo build --release -p liverseg -p liverseg-model --bins" >&2; exit 2; }
[ -d "$CASES" ] || { echo "$CASES: no such folder of cases" >&2; exit 2; }
mkdir -p "$OUT/reference" "$OUT/segmented"
config=()
[ -n "${CONFIG:-}" ] && config=(--config "$CONFIG")
for ct in "$CASES"/*/ct.nii.gz; do
  c=$(basename "$(dirname "$ct")")
  # Liver-free CTs (negatives) train in every fold but are not held out.
  "$LIVERSEG" info "$CASES/$c/liver.nii.gz" --json | grep -q '"max": *0\.0,' && continue
  d="$OUT/$c"; mkdir -p "$d/data"
  for o in "$CASES"/*/; do o=$(basename "$o"); [ "$o" != "$c" ] && ln -sfn "$CASES/$o" "$d/data/$o"; done
  echo "fold $c: training for $MINUTES min ($(date +%T))"
  "$LIVERSEG" train "$d/data" -o "$d/run" --cache "$OUT/cache" --max-minutes "$MINUTES" "${config[@]}" --json > "$d/train.json"
  "$LIVERSEG" segment "$ct" -o "$d/seg" --model "$d/run/best.lsm" --no-overview --json > "$d/report.json"
  ln -sfn "$CASES/$c/liver.nii.gz" "$OUT/reference/$c.nii.gz"
  ln -sfn "$(cd "$d/seg" && pwd)/liver.nii.gz" "$OUT/segmented/$c.nii.gz"
done
"$LIVERSEG" evaluate --pairs "$OUT/reference" "$OUT/segmented" --out "$OUT/summary"
