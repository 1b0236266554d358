#!/bin/bash
# Leave-one-out evaluation of the built-in model's training recipe on a folder
# of cases (default ../shared/data/cases): for each case with a liver, train on
# all the others with no validation set (so the held-out case chooses neither
# the checkpoint nor the threshold), segment the held-out CT with that fold's
# last model and evaluate it against its reference.
#
#   scripts/leave-one-out.sh [OUT]
#   env: CASES    folder of cases
#        CONFIG   train config (default models/liverseg-default.train.json: the
#                 built-in model's recipe, 40 epochs of 2,000 patches)
#        FOLDS    held-out case names (default: every case with a liver)
#        MINUTES  optional time cap per fold, counted over resumes
#        NETWORK  optional network config JSON instead of the fast preset
#                 (passed again on every resume: train refuses another one)
#        LIVERSEG the binary (default target/release/liverseg)
#
# On 2 CPU cores a fold of the built-in recipe takes 2.5-3.5 hours (the
# previous, 15-epoch recipe about 85 minutes), so the script is resumable: a
# fold whose training stopped (time cap, session ended) resumes from its last
# finished epoch, and a fold already segmented is skipped. Results:
#   OUT/<case>/seg-0.5/      segmented at threshold 0.5 (the method's)
#   OUT/<case>/seg-searched/ at the threshold train searched on the fold's
#                            training cases
#   OUT/summary-0.5/, OUT/summary-searched/  evaluate --pairs over the folds done
#
# Folds of a long recipe outlive a session (and its machine): keep their resume
# points in the repository and bring them back next time:
#   scripts/leave-one-out.sh --save OUT KEEP      # OUT/<case>/run -> KEEP/<case>/run
#   scripts/leave-one-out.sh --restore KEEP OUT   # the reverse, before resuming
# (either way a fold whose copy has more epochs done than its source is skipped)
# (last.lsm, last.optim.bpk, state.json, best.lsm, hard.json when hard examples
# are mined, epoch-N.lsm kept for an averaging recipe,
# and the log without its
# per-step lines as train-summary.jsonl; the full log stays in OUT).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "--save" ] || [ "${1:-}" = "--restore" ]; then
  [ $# -eq 3 ] || { echo "usage: $0 --save OUT KEEP | --restore KEEP OUT" >&2; exit 2; }
  from=$2; to=$3
  epochs() { grep -o '"epochs_done": *[0-9]*' "$1" | grep -o '[0-9]*$'; }
  for run in "$from"/*/run; do
    [ -f "$run/state.json" ] || continue
    c=$(basename "$(dirname "$run")")
    # Never go backwards: a copy further than the source
    # (a run that went on after its last save) is kept as it is.
    if [ -f "$to/$c/run/state.json" ]; then
      have=$(epochs "$to/$c/run/state.json"); src=$(epochs "$run/state.json")
      if [ "$have" -gt "$src" ]; then
        echo "$1: $c skipped: $to/$c/run is further ($have epochs) than $run ($src)"
        continue
      fi
    fi
    mkdir -p "$to/$c/run"
    # epoch-N.lsm: the epochs an averaging recipe (average_last_epochs) has
    # kept so far, part of its resume point.
    for f in last.lsm last.optim.bpk state.json best.lsm hard.json $(cd "$run" && ls epoch-*.lsm 2>/dev/null); do
      [ -f "$run/$f" ] && cp "$run/$f" "$to/$c/run/$f.tmp" && mv "$to/$c/run/$f.tmp" "$to/$c/run/$f"
    done
    if [ "$1" = "--save" ] && [ -f "$run/train.jsonl" ]; then
      grep -v '"event":"step"' "$run/train.jsonl" > "$to/$c/run/train-summary.jsonl.tmp" && mv "$to/$c/run/train-summary.jsonl.tmp" "$to/$c/run/train-summary.jsonl"
    elif [ "$1" = "--restore" ] && [ -f "$run/train-summary.jsonl" ] && [ ! -f "$to/$c/run/train.jsonl" ]; then
      # The resumed run appends to this, so the next --save keeps every session's events.
      cp "$run/train-summary.jsonl" "$to/$c/run/train.jsonl"
    fi
    echo "$1: $c ($(grep -o '"epochs_done": *[0-9]*' "$run/state.json"))"
  done
  exit 0
fi
OUT=${1:-loo}
CASES=${CASES:-$root/../shared/data/cases}
CONFIG=${CONFIG:-$root/models/liverseg-default.train.json}
LIVERSEG=${LIVERSEG:-$root/target/release/liverseg}
[ -x "$LIVERSEG" ] || { echo "build first: cargo build --release -p liverseg -p liverseg-model --bins" >&2; exit 2; }
[ -d "$CASES" ] || { echo "$CASES: no such folder of cases" >&2; exit 2; }
[ -f "$CONFIG" ] || { echo "$CONFIG: no such train config" >&2; exit 2; }
epochs=$(grep -o '"epochs": *[0-9]*' "$CONFIG" | grep -o '[0-9]*$')
if [ -n "${FOLDS:-}" ]; then
  folds=$FOLDS
else
  folds=""
  for ct in "$CASES"/*/ct.nii.gz; do
    c=$(basename "$(dirname "$ct")")
    # Liver-free CTs (negatives) train in every fold but are not held out.
    # Read the whole report before grepping: with pipefail, `info | grep -q`
    # fails whenever grep quits before info has written everything (SIGPIPE),
    # which once made a liver-free CT a fold.
    info=$("$LIVERSEG" info "$CASES/$c/liver.nii.gz" --json)
    grep -q '"max": *0\.0,' <<<"$info" || folds="$folds $c"
  done
fi
pending=0
for c in $folds; do
  d="$OUT/$c"
  if [ ! -f "$d/seg-searched/liver.nii.gz" ]; then
    mkdir -p "$d/data"
    for o in "$CASES"/*/; do o=$(basename "$o"); [ "$o" != "$c" ] && ln -sfn "$CASES/$o" "$d/data/$o"; done
    resume=(); [ -f "$d/run/state.json" ] && resume=(--resume)
    cap=(); [ -n "${MINUTES:-}" ] && cap=(--max-minutes "$MINUTES")
    net=(); [ -n "${NETWORK:-}" ] && net=(--network "$NETWORK")
    echo "fold $c: training ${resume[*]} ($(date +%T))"
    "$LIVERSEG" train "$d/data" -o "$d/run" --cache "$OUT/cache" --config "$CONFIG" "${cap[@]}" "${net[@]}" "${resume[@]}" --json > "$d/train.json"
    done_epochs=$(grep -o '"epochs_done": *[0-9]*' "$d/run/state.json" | grep -o '[0-9]*$')
    if [ "$done_epochs" -lt "$epochs" ]; then
      echo "fold $c: $done_epochs of $epochs epochs trained; run again to resume"
      pending=$((pending + 1)); continue
    fi
    # "searched": the threshold train searched on the training cases, from
    # the model's header (a recipe with a fixed "threshold" writes that one as
    # the model's own); empty, so the model's own, if the header has none.
    model_info=$("$LIVERSEG" info "$d/run/best.lsm" --json)
    searched=$(grep -o '"searched_threshold": *[0-9.]*' <<<"$model_info" | grep -o '[0-9.]*$' || true)
    for t in 0.5 searched; do
      th=(--threshold 0.5); [ "$t" = searched ] && th=(${searched:+--threshold "$searched"})
      "$LIVERSEG" segment "$CASES/$c/ct.nii.gz" -o "$d/seg-$t" --model "$d/run/best.lsm" "${th[@]}" --no-overview --force --json > "$d/report-$t.json"
    done
    # Each fold's figures as soon as it is done: a run stopped before the
    # last fold still shows the ones it finished.
    echo "fold $c held out at 0.5: $("$LIVERSEG" evaluate "$CASES/$c/liver.nii.gz" "$d/seg-0.5/liver.nii.gz" | tr -s '\n ' '  ')"
  fi
  for t in 0.5 searched; do
    mkdir -p "$OUT/reference-$t" "$OUT/segmented-$t"
    ln -sfn "$CASES/$c/liver.nii.gz" "$OUT/reference-$t/$c.nii.gz"
    ln -sfn "$(cd "$d/seg-$t" && pwd)/liver.nii.gz" "$OUT/segmented-$t/$c.nii.gz"
  done
done
for t in 0.5 searched; do
  [ -d "$OUT/segmented-$t" ] && "$LIVERSEG" evaluate --pairs "$OUT/reference-$t" "$OUT/segmented-$t" --out "$OUT/summary-$t"
done
[ "$pending" -eq 0 ] || { echo "$pending fold(s) not finished: run again to resume" >&2; exit 3; }
