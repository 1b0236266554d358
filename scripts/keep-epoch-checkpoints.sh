#!/bin/bash
# Keep a copy of every epoch's checkpoint of running leave-one-out folds, to
# measure how much a fold's figure (its last checkpoint) varies from epoch to
# epoch (models/next/README.md, "How stable is the last checkpoint?"). Chooses
# nothing; costs no compute. train writes last.lsm, then state.json naming the
# epoch, each atomically; polled every 15 s while an epoch takes minutes, the
# copy made once state.json names epoch N is epoch N's model. A late copy would
# show in its header ("training": {"epoch": N}): check it before using one.
#
#   nohup scripts/keep-epoch-checkpoints.sh ../runs/loo-next > /dev/null 2>&1 &
#   -> OUT/<case>/snaps/epoch-<N>.lsm
set -euo pipefail
OUT=${1:?usage: $0 OUT (a leave-one-out output folder)}
while true; do
  for run in "$OUT"/*/run; do
    [ -f "$run/state.json" ] || continue
    e=$(grep -o '"epochs_done": *[0-9]*' "$run/state.json" | grep -o '[0-9]*$')
    snaps="$run/../snaps"; mkdir -p "$snaps"
    [ -f "$snaps/epoch-$e.lsm" ] || cp "$run/last.lsm" "$snaps/epoch-$e.lsm"
  done
  sleep 15
done
