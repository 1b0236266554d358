#!/bin/bash
# Which augmentation families and sampling choices of the built-in recipe
# earn their place (issue 16): short runs of the recipe on one leave-one-out
# fold, once with everything on and once with each family switched off,
# evaluated on the held-out case at 0.5 with the last checkpoint (nothing is
# chosen on it). Short runs rank the choices; they do not predict the full
# run's figures.
#
#   scripts/ablation.sh OUT
#   env: FOLD      held-out case (default ircadb01-07, the recipe's hardest fold)
#        EPOCHS    epochs per run (default 12; the learning rate is halved
#                  every EPOCHS/4, as the full recipe does every 40/4)
#        PATCHES   patches per sub-epoch (default 500: 12,000 patches a run)
#        VARIANTS  default: "all spatial intensity thick_slices non_contrast
#                  elastic border" (each name but "all" is switched off;
#                  "border" sets border_fraction to 0; "flips" sets flip_x
#                  and flip_y to 0); "hard" switches
#                  hard-example mining on (hard_fraction 0.5)
#        CONFIG, CASES, LIVERSEG, MINUTES  as scripts/leave-one-out.sh
#
# Each variant is a leave-one-out run in OUT/<variant> (resumable: run again to
# continue); OUT/ablation.csv collects the results.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: $0 OUT}
FOLD=${FOLD:-ircadb01-07}
EPOCHS=${EPOCHS:-12}
PATCHES=${PATCHES:-500}
VARIANTS=${VARIANTS:-all spatial intensity thick_slices non_contrast elastic border}
base=${CONFIG:-$root/models/liverseg-default.train.json}
export CASES=${CASES:-$root/../shared/data/cases}
export LIVERSEG=${LIVERSEG:-$root/target/release/liverseg}
[ -f "$base" ] || { echo "$base: no such train config" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is needed to write the variant configs" >&2; exit 2; }
mkdir -p "$OUT/cache"
# A copy of the fold script: editing the repository's copy while a long run
# reads it would change the run (bash reads scripts as it goes).
cp "$root/scripts/leave-one-out.sh" "$OUT/leave-one-out.sh"
for v in $VARIANTS; do
  mkdir -p "$OUT/$v"
  # One pre-processing cache for all variants (same CTs, same grid).
  [ -e "$OUT/$v/cache" ] || ln -s "$(cd "$OUT/cache" && pwd)" "$OUT/$v/cache"
  python3 - "$base" "$v" "$EPOCHS" "$PATCHES" > "$OUT/$v/train.json" <<'EOF'
import json, sys
base, variant, epochs, patches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = json.load(open(base))
c["epochs"] = epochs
c["patches_per_subepoch"] = patches
c["lr_step_epochs"] = max(1, epochs // 4)
if variant == "border":
    c["border_fraction"] = 0.0
elif variant == "flips":
    # Mirroring puts the liver on the left half of the time, where the
    # spleen is: the folds' leaks go into the spleen.
    c["augment"]["flip_x"] = 0.0
    c["augment"]["flip_y"] = 0.0
elif variant == "hard":
    # Switched on, not off: hard-example mining from a quarter of the run,
    # refreshed every sixth (from epoch 3, every 2 epochs in a 12-epoch run).
    c["hard_fraction"] = 0.5
    c["hard_from_epoch"] = max(1, epochs // 4)
    c["hard_every"] = max(1, epochs // 6)
elif variant != "all":
    if variant not in c.get("augment", {}):
        sys.exit(f"{variant}: not an augmentation family of {base}")
    del c["augment"][variant]
json.dump(c, sys.stdout, indent=2)
EOF
  echo "variant $v: $(date +%T)"
  CONFIG="$OUT/$v/train.json" FOLDS="$FOLD" bash "$OUT/leave-one-out.sh" "$OUT/$v" || {
    echo "variant $v not finished: run again to resume" >&2; exit 3; }
done
{
  echo "variant,dice,volume_ratio,assd,hd,hd95"
  for v in $VARIANTS; do
    f="$OUT/$v/summary-0.5/cases.csv"
    [ -f "$f" ] || continue
    awk -F, -v v="$v" 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
      { print v "," $col["dice"] "," $col["volume_ratio"] "," $col["assd"] "," $col["hd"] "," $col["hd95"] }' "$f"
  done
} > "$OUT/ablation.csv"
column -s, -t "$OUT/ablation.csv"
