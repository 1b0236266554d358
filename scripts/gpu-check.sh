#!/usr/bin/env bash
# GPU check of a liverseg build with the `wgpu` feature, on a machine with a
# Vulkan-capable GPU. Needs no data: it segments phantoms.
#
#   cargo build --release -p liverseg -p liverseg-model --bins --benches \
#     --features liverseg-model/wgpu
#   scripts/gpu-check.sh DIR-WITH-liverseg-AND-network-BENCH OUT-DIR
#
# 1. segments the same phantom on cpu and gpu and compares the masks (to the
#    truth and to the CPU's mask) and the times;
# 2. runs the network bench on the GPU (burn vs PyTorch on CUDA when python3
#    has torch);
# 3. trains the built-in recipe for one epoch on three phantoms, on the GPU
#    and on all CPU cores;
# 4. runs the network bench on two CPU threads (burn flex vs PyTorch CPU).
# Each step has its own time limit so one hang does not eat the rest.
set -u
bin=$1
out=$2
mkdir -p "$out"
work=$(mktemp -d)
log() { echo "== $* ($(date +%T))"; }
# GNU time for peak memory where installed.
timed() { if [ -x /usr/bin/time ]; then /usr/bin/time -f "$@"; else shift; "$@"; fi; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
nproc

log phantoms
for s in 3 4 5; do "$bin/liverseg" phantom -o "$work/cases/p$s" --seed "$s" >/dev/null || exit 1; done

for d in cpu gpu; do
  log "segment on $d"
  timed "$d: wall %e s, peak RSS %M KiB" timeout 150 \
    "$bin/liverseg" segment "$work/cases/p3/ct.nii.gz" -o "$work/seg-$d" --device "$d" --json >"$out/segment-$d.json" 2>"$out/segment-$d.err"
  echo "exit $?"; tail -3 "$out/segment-$d.err"
  if [ -f "$work/seg-$d/liver.nii.gz" ]; then
    "$bin/liverseg" evaluate "$work/cases/p3/liver.nii.gz" "$work/seg-$d/liver.nii.gz" --json >"$out/eval-truth-$d.json"
    # Compare with the CPU's mask only when the CPU run produced one.
    rm -f "$out/eval-cpu-$d.json"
    if [ "$d" != cpu ] && [ -f "$work/seg-cpu/liver.nii.gz" ]; then
      "$bin/liverseg" evaluate "$work/seg-cpu/liver.nii.gz" "$work/seg-$d/liver.nii.gz" --json >"$out/eval-cpu-$d.json"
    fi
    python3 - "$out" "$d" <<'EOF'
import json, os, sys
out, d = sys.argv[1:]
r = json.load(open(f"{out}/segment-{d}.json"))
t = json.load(open(f"{out}/eval-truth-{d}.json"))
stages = {x["stage"]: round(x["seconds"], 2) for x in r["timings_s"]}
line = f"{d}: liver {r['liver_volume_ml']:.1f} ml, DSC vs truth {t['dice']:.4f}, tiles {r['tiles']}, seconds {stages}"
if os.path.exists(f"{out}/eval-cpu-{d}.json"):
    c = json.load(open(f"{out}/eval-cpu-{d}.json"))
    line += f", DSC vs cpu mask {c['dice']:.5f}"
elif d != "cpu":
    line += ", no cpu mask to compare with (the cpu run failed)"
print(line)
EOF
  fi
done

bench=$(ls "$bin"/network* 2>/dev/null | head -1)
if [ -n "$bench" ]; then
  log "network bench, gpu (PyTorch on CUDA beside it)"
  timeout 150 "$bench" --presets fast,paper --device gpu --steps 5 2>&1 | tee "$out/bench-gpu.txt"
fi
for d in gpu cpu; do
  log "train one epoch on $d"
  timed "$d: train wall %e s, peak RSS %M KiB" timeout 150 "$bin/liverseg" train "$work/cases" -o "$work/train-$d" \
    --config models/liverseg-default.train.json --epochs 1 --device "$d" --json >"$out/train-$d.json" 2>"$out/train-$d.err"
  echo "exit $?"; tail -4 "$out/train-$d.err"
done
if [ -n "$bench" ]; then
  log "network bench, 2 cpu threads (PyTorch CPU beside it)"
  RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 timeout 120 taskset -c 0,1 "$bench" --presets fast --device cpu --steps 3 2>&1 | tee "$out/bench-cpu2.txt"
fi
log done
