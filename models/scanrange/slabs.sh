#!/bin/bash
# The rule's second measurement: slabs of 3D-IRCADb-01 patient 7 (60, 100
# and 150 mm, centred on its reference liver), the CT and its reference cut
# alike with `convert --slices`, segmented with MODEL (segment's defaults)
# and evaluated.
#
#   models/scanrange/slabs.sh MODEL OUT
#
# Patient 7: 151 slices of 1.6 mm, reference liver in slices 48-145 (centre
# 96.5); slabs of 38, 62 and 94 slices (60.8, 99.2, 150.4 mm) centred there.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -eq 2 ] || { echo "usage: $0 MODEL OUT" >&2; exit 2; }
MODEL=$1; OUT=$2
CASES=${CASES:-$root/../shared/data/cases}
LIVERSEG=${LIVERSEG:-$root/target/release/liverseg}
case_dir=$CASES/ircadb01-07
mkdir -p "$OUT"
for slab in 60:78:116 100:66:128 150:50:144; do
  IFS=: read -r mm first end <<<"$slab"
  d=$OUT/slab-$mm
  mkdir -p "$d"
  "$LIVERSEG" convert "$case_dir/ct.nii.gz" "$d/ct.nii.gz" --slices "$first:$end"
  "$LIVERSEG" convert "$case_dir/liver.nii.gz" "$d/reference.nii.gz" --slices "$first:$end"
  "$LIVERSEG" segment "$d/ct.nii.gz" -o "$d/seg" --model "$MODEL" --no-overview --force --json > "$d/report.json"
  "$LIVERSEG" evaluate "$d/reference.nii.gz" "$d/seg/liver.nii.gz" --json > "$d/evaluation.json"
  echo "slab $mm mm (slices $first:$end): $(grep -o '"dice": *[0-9.e-]*' "$d/evaluation.json" | head -1)"
done
