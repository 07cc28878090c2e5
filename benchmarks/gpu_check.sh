#!/usr/bin/env bash
# The device check (issue 13): on one H200, in 9 minutes, write to $OUT
#   throughput.jsonl  gensis vs lightly DINO images/s (ResNet-18 CIFAR stem, bf16)
#   result.json       that, CIFAR-10 stage 1 for the epochs that fit in 4 min + its kNN,
#                     and the 32-px generator for 3 min + its faithfulness
#   log.txt           everything printed
#
# Before, on the machine with a network (the device has none):
#   python benchmarks/gpu_check.py prepare                # .gpu_data: 10k/5k CIFAR-10 images, ~16 MB
#   echo /.whl/ >> .git/info/exclude; echo /.gpu_data/ >> .git/info/exclude
#   pip download --no-deps ... -d .whl diffusers lightly lightly-utils pytorch-lightning aenum hydra-core omegaconf antlr4-python3-runtime
#     (the device README's `pip download` line; torch, timm, lightning are there already)
# On the device:   bash benchmarks/gpu_check.sh           (carry: .whl, .gpu_data)
# Dry run on CPU:  GPU_CHECK_DRY=1 OUT=runs/gpu_check_dry bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
source benchmarks/_gpu_env.sh
DRY=()
[ -n "${GPU_CHECK_DRY:-}" ] && DRY=(--dry)
(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv) 2>&1 | tee "$OUT/log.txt"
timeout 540 "$PY" benchmarks/gpu_check.py run --data "$DATA" --out "$OUT" "${DRY[@]}" 2>&1 | tee -a "$OUT/log.txt"
