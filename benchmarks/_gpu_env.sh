# Sourced by the device scripts: the carried wheels, gensis from this tree, the data folder.
# Sets PY and DATA; GPU_CHECK_DRY=1 makes a tiny CIFAR-10 subset to run everything on the CPU.
PY=${PYTHON:-python3}
if [ -d .whl ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=src:${PYTHONPATH:-} PYTHONUNBUFFERED=1  # gensis from this tree: no install needed
DATA=${GPU_CHECK_DATA:-.gpu_data}
if [ -n "${GPU_CHECK_DRY:-}" ]; then
  DATA=${GPU_CHECK_DATA:-runs/gpu_check_dry_data}
  [ -f "$DATA/cifar10_train.npz" ] || "$PY" benchmarks/gpu_check.py prepare --to "$DATA" --train-images 400 --test-images 200 \
    --pcam-images 0
fi
[ -f "$DATA/cifar10_train.npz" ] || [ -f "$DATA/pcam_train.npz" ] || { echo "$0: $DATA/cifar10_train.npz missing: run 'python benchmarks/gpu_check.py prepare' and carry .gpu_data" >&2; exit 2; }
