#!/usr/bin/env bash
# Issue 26 on a lent device: Gen-DINO against DINO, both from scratch for the same epochs,
# 3 seeds, on the 10k/5k CIFAR-10 subset of gpu_check.py prepare (ResNet-18 with the CIFAR stem,
# the pixel32 UNet), in about 9 minutes of one H200. Writes to $OUT: table.md, table.json,
# result.jsonl, the picture grids and log.txt. The run folders stay in runs/gpu_scratch, so the
# same command, run again, resumes where a timeout stopped it.
#
# Before: as benchmarks/gpu_check.sh (carry .gpu_data, and .whl for diffusers).
# On the device:   bash benchmarks/gpu_scratch.sh
# Dry run on CPU:  GPU_CHECK_DRY=1 OUT=runs/gpu_scratch_dry bash benchmarks/gpu_scratch.sh
set -uo pipefail
OUT=${OUT:-runs/gpu_scratch_out}
mkdir -p "$OUT"
source benchmarks/_gpu_env.sh
SCALE=device-check
RUN=runs/gpu_scratch/cifar10
if [ -n "${GPU_CHECK_DRY:-}" ]; then SCALE=dry; RUN=runs/gpu_scratch_dry/cifar10; fi
(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv) 2>&1 | tee -a "$OUT/log.txt"
timeout 540 "$PY" benchmarks/gensis_scratch.py --data cifar10 --scale "$SCALE" --no-compute-fair --quiet \
  --train "$DATA/cifar10_train.npz" --test "$DATA/cifar10_test.npz" --out "$RUN" --json "$OUT/result.jsonl" \
  2>&1 | tee -a "$OUT/log.txt"
rc=${PIPESTATUS[0]}
cp -r "$RUN"/table.md "$RUN"/table.json "$RUN"/pictures "$RUN"/pipeline.json "$OUT"/ 2>/dev/null
exit "$rc"
