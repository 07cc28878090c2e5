#!/usr/bin/env bash
# The one script for a lent H200 (issues 13 and 26). Each part runs inside a deadline
# ($GPU_CHECK_SECONDS, default 540) and writes to $OUT as it finishes, so a stopped run still
# returns what it measured:
#   tests      the CUDA tests (pytest -m gpu): views and eval math on the GPU match the CPU
#   throughput gensis vs lightly DINO images/s (ResNet-18 CIFAR stem, bf16)   -> throughput.jsonl
#   scratch    Gen-DINO against DINO from scratch (benchmarks/gpu_scratch.sh) -> table_*.md, result.jsonl
#   budget     gpu_check.py run: stage 1 and the generator each for a fixed time budget -> result_budget.json
# GPU_CHECK_PARTS picks them (default: tests,throughput,scratch); GPU_SCRATCH_ARGS sizes the
# comparison (e.g. "--epochs 10 --generator-epochs 10 --seeds 0" for a first timing run).
#
# Before, on the machine with a network (the device has none):
#   python benchmarks/gpu_check.py prepare                # .gpu_data: 10k/5k CIFAR-10 images, ~41 MB
#   echo /.whl/ >> .git/info/exclude; echo /.gpu_data/ >> .git/info/exclude
#   pip download --no-deps ... -d .whl diffusers pydantic pydantic_core annotated-types typing-inspection
#     typing_extensions importlib_metadata lazy-importer lightly hydra-core omegaconf==2.3.0
#     (the device README's `pip download` line) and `pip wheel --no-deps antlr4-python3-runtime==4.9.3`
# On the device:   bash benchmarks/gpu_check.sh           (carry: .whl, .gpu_data)
# Dry run on CPU:  GPU_CHECK_DRY=1 OUT=runs/gpu_check_dry bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-540}))
PARTS=",${GPU_CHECK_PARTS:-tests,throughput,scratch},"
source benchmarks/_gpu_env.sh
log() { tee -a "$OUT/log.txt"; }
left() { echo $((DEADLINE - SECONDS)); }
(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv) 2>&1 | log
"$PY" -c "import torch, diffusers, pydantic; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'diffusers', diffusers.__version__, 'pydantic', pydantic.__version__)" 2>&1 | log
if [ -n "${GPU_CHECK_DRY:-}" ]; then DEV=cpu; PREC=fp32; BATCH=32; STEPS=2; else DEV=cuda; PREC=bf16; BATCH=512; STEPS=30; fi
rc=0
if [[ $PARTS == *,tests,* && -z "${GPU_CHECK_DRY:-}" ]]; then
  echo "== tests $(date -u +%T)" | log
  timeout 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/augment/test_augment.py tests/eval/test_eval_math.py 2>&1 | log
fi
if [[ $PARTS == *,throughput,* ]]; then
  echo "== throughput $(date -u +%T)" | log
  timeout 120 "$PY" benchmarks/throughput_dino.py --data "$DATA/cifar10_train.npz" --device "$DEV" --precision "$PREC" \
    --batch-size "$BATCH" --steps "$STEPS" --warmup 5 --n-local 0 --workers 12 --out "$OUT/throughput.jsonl" 2>&1 | log
fi
if [[ $PARTS == *,scratch,* ]]; then
  echo "== scratch $(date -u +%T), $(left) s left" | log
  GPU_SCRATCH_SECONDS=$(left) bash benchmarks/gpu_scratch.sh || rc=$?
fi
if [[ $PARTS == *,budget,* && $(left) -lt 60 ]]; then
  echo "== budget: skipped, $(left) s left" | log
elif [[ $PARTS == *,budget,* ]]; then
  echo "== budget $(date -u +%T)" | log
  DRY=(); [ -n "${GPU_CHECK_DRY:-}" ] && DRY=(--dry)
  timeout "$(left)" "$PY" benchmarks/gpu_check.py run --data "$DATA" --out runs/gpu_check_budget "${DRY[@]}" 2>&1 | log
  cp runs/gpu_check_budget/result.json "$OUT/result_budget.json"  # its run folders stay: $OUT returns 8 files at most
fi
echo "== done $(date -u +%T), $(left) s left" | log
exit "$rc"
