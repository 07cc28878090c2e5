#!/usr/bin/env bash
# Issue 26 on a lent device: Gen-DINO against DINO, both from scratch for the same epochs, on the
# 10k/5k CIFAR-10 subset of gpu_check.py prepare (ResNet-18 with the CIFAR stem, the pixel32 UNet).
# In phases, each inside the deadline ($GPU_SCRATCH_SECONDS, default 540) and each copying its
# table to $OUT when done, so a stopped run returns the phases it finished:
#   seed0   the whole pipeline for seed 0                       -> table_seed0.md
#   seeds3  seeds 1 and 2 of both arms on the same bank         -> table_seeds3.md
#   dial    Gen-DINO from a guidance-2 bank, 3 seeds            -> table_dial.md
# Every phase appends its result to $OUT/result.jsonl; runs.tgz holds the run folder's logs,
# configs, pictures and reports (no weights). A later phase resumes the earlier phases' runs.
# $GPU_SCRATCH_ARGS adds gensis_scratch.py arguments (--epochs N, --generator-epochs G, --seeds).
#
# GPU_SCRATCH_SCALE=converged runs issue 37's comparison instead: PCam at 32 px with a converged
# stage 1 (gensis_scratch.py --scale converged, the CPU's recipe to the last setting), training
# seeds $GPU_SCRATCH_SEEDS (default 100,101: other numbers than the CPU's) on the carried .npz
# copies of the CPU's tiles -> table_converged.md and result_converged.jsonl. Back on the CPU,
#   python benchmarks/gensis_scratch.py ... --merge result_converged.jsonl
# joins its seeds to the CPU's table only when recipe and pixels are identical (both digests).
# Its data: python benchmarks/gpu_check.py prepare --train-images 0   (PCam only, about 20 MB).
#
# Before: as benchmarks/gpu_check.sh (carry .gpu_data, and .whl for diffusers).
# On the device:   bash benchmarks/gpu_scratch.sh   (or as a part of gpu_check.sh)
# Dry run on CPU:  GPU_CHECK_DRY=1 OUT=runs/gpu_scratch_dry bash benchmarks/gpu_scratch.sh
set -uo pipefail
OUT=${OUT:-runs/gpu_scratch_out}
mkdir -p "$OUT"
DEADLINE=$((SECONDS + ${GPU_SCRATCH_SECONDS:-540}))
source benchmarks/_gpu_env.sh
SCALE=device-check
RUN=runs/gpu_scratch/cifar10
if [ -n "${GPU_CHECK_DRY:-}" ]; then SCALE=dry; RUN=runs/gpu_scratch_dry/cifar10; fi
read -r -a EXTRA <<< "${GPU_SCRATCH_ARGS:-}"
if [ "${GPU_SCRATCH_SCALE:-}" = converged ]; then  # issue 37: one phase, its seeds in turn
  RUN=runs/gpu_scratch/pcam-converged
  ARGS=(--data pcam --scale converged --seeds "${GPU_SCRATCH_SEEDS:-100,101}" --out "$RUN"
        --train "$DATA/pcam_train.npz" --test "$DATA/pcam_test.npz" --json "$OUT/result_converged.jsonl")
  if [ -n "${GPU_CHECK_DRY:-}" ]; then
    RUN=runs/gpu_scratch_dry/pcam-converged
    [ -f "$DATA/pcam_train.npz" ] || "$PY" benchmarks/gpu_check.py prepare --to "$DATA" --train-images 400 \
      --test-images 200 || exit 1
    ARGS=(--data pcam --scale converged --seeds 100,101 --out "$RUN" --epochs 2 --generator-epochs 1 --max-images 256
          --train "$DATA/pcam_train.npz" --test "$DATA/pcam_test.npz" --json "$OUT/result_converged.jsonl")
  fi
  left=$((DEADLINE - SECONDS - 10))
  echo "== converged $(date -u +%T), ${left} s left" | tee -a "$OUT/log.txt"
  timeout "$left" "$PY" benchmarks/gensis_scratch.py "${ARGS[@]}" --quiet "${EXTRA[@]}" 2>&1 | tee -a "$OUT/log.txt"
  rc=${PIPESTATUS[0]}
  [ -f "$RUN/table.md" ] && cp "$RUN/table.md" "$OUT/table_converged.md"  # the running table: whole seeds
  tar czf "$OUT/runs.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.npz' --exclude='*.bin' \
    --exclude='events.out.*' "$RUN" 2>/dev/null
  exit "$rc"
fi
SEEDS=0,1,2
for ((i = 0; i < ${#EXTRA[@]}; i++)); do [ "${EXTRA[i]}" = --seeds ] && SEEDS=${EXTRA[i + 1]}; done
rc=0
phase() {  # phase NAME ARGS...: one gensis_scratch.py run, within what is left of the deadline
  local name=$1 left=$((DEADLINE - SECONDS - 10))
  shift
  if [ "$left" -lt 20 ]; then echo "== $name: skipped, ${left} s left" | tee -a "$OUT/log.txt"; return 1; fi
  echo "== $name $(date -u +%T), ${left} s left" | tee -a "$OUT/log.txt"
  timeout "$left" "$PY" benchmarks/gensis_scratch.py --data cifar10 --scale "$SCALE" --no-compute-fair --quiet \
    --train "$DATA/cifar10_train.npz" --test "$DATA/cifar10_test.npz" --out "$RUN" --json "$OUT/result.jsonl" \
    "${EXTRA[@]}" "$@" 2>&1 | tee -a "$OUT/log.txt"
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] && cp "$RUN/table.md" "$OUT/table_$name.md"
  return "$rc"
}
phase seed0 --seeds "${SEEDS%%,*}" && { [ "$SEEDS" = "${SEEDS%%,*}" ] || phase seeds3 --seeds "$SEEDS"; } \
  && phase dial --seeds "$SEEDS" --dial guidance_scale=2
[ -d "$RUN" ] && tar czf "$OUT/runs.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.npz' \
  --exclude='*.bin' --exclude='events.out.*' "$RUN" 2>/dev/null
exit "$rc"
