#!/usr/bin/env bash
# Issue 37: Gen-DINO against DINO from scratch at a converged stage 1 (PCam at 32 px, the
# `converged` scale of gensis_scratch.py), sitting by sitting, until the asked seeds are in.
#
# The experiment outlives a session, so it lives outside the checkout ($EXP, default ../issue37-comparison
# beside the repository) and runs from a git worktree pinned at the revision recorded there
# ($EXP/REVISION), so that work landing meanwhile does not change the recipe halfway. Each call
# resumes: finished runs are reused, an interrupted one continues from its last checkpoint, and
# $EXP/comparison/table.md is rewritten after every seed (it says how many seeds are in). When
# $EXP is gone, the call starts again from the current HEAD and says so in $EXP/HISTORY.
#
#   bash benchmarks/converged_comparison.sh                 # seeds 0-4, all 3,000 PCam test tiles
#   SEEDS=0,1,2,3,4,5,6 bash benchmarks/converged_comparison.sh   # a later sitting adds seeds
#   DEVICE=cuda bash benchmarks/converged_comparison.sh     # the same recipe on a GPU
#   OMP_NUM_THREADS=1 python benchmarks/converged_worker.py --seeds 4   # beside it: seed 4, then the
#                                                           # compute-fair arm, on the other core
#
# THREADS (default 1) pins torch's CPU threads for the whole experiment: the compute-fair arm is
# given Gen-DINO's measured seconds, which compare only when every run had the same threads; one
# thread also leaves the other core of a 2-core machine to other work. The first call records it.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
EXP=${EXP:-$(dirname "$REPO")/issue37-comparison}
SEEDS=${SEEDS:-0,1,2,3,4}
DEVICE=${DEVICE:-auto}
DATA=${DATA:-$(dirname "$REPO")/shared/data/pcam}
PY=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=python3
THREADS=${THREADS:-1}
if [ -f "$EXP/THREADS" ] && [ "$(cat "$EXP/THREADS")" != "$THREADS" ]; then
  echo "$0: $EXP ran with THREADS=$(cat "$EXP/THREADS"); its seconds compare only at that count (set THREADS=$(cat "$EXP/THREADS"))" >&2
  exit 2
fi
if [ -f "$EXP/REVISION" ]; then
  REV=$(cat "$EXP/REVISION")
  echo "$(date -u +%FT%TZ) resumed at $REV, seeds $SEEDS, threads $THREADS" >> "$EXP/HISTORY"
else
  if [ -e "$EXP" ] && [ -n "$(ls -A "$EXP" 2>/dev/null)" ]; then
    echo "$0: $EXP holds files but no REVISION: not an experiment folder of this script; set EXP=" >&2; exit 2
  fi
  mkdir -p "$EXP"
  REV=${REV:-$(git -C "$REPO" rev-parse HEAD)}
  echo "$REV" > "$EXP/REVISION"
  echo "$(date -u +%FT%TZ) started at $REV, seeds $SEEDS, threads $THREADS: no experiment folder was there (a fresh start)" \
    | tee -a "$EXP/HISTORY"
fi
[ -f "$EXP/THREADS" ] || echo "$THREADS" > "$EXP/THREADS"
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
if [ ! -d "$EXP/src" ]; then
  git -C "$REPO" worktree prune
  git -C "$REPO" worktree add --detach "$EXP/src" "$REV" >/dev/null
fi
[ "$(git -C "$EXP/src" rev-parse HEAD)" = "$REV" ] || { echo "$0: $EXP/src is not at $REV" >&2; exit 2; }
# The small evidence (table, evaluations, curves, HISTORY) is copied into the repository every 10
# minutes and at the end (benchmarks/converged_record.py; commit it), so a lost machine no longer
# loses the finished seeds' figures (the run itself starts again, seed 0 first: the bank needs its generator).
save_record() { "$PY" "$REPO/benchmarks/converged_record.py" save --exp "$EXP" || true; }
( while sleep 600; do save_record >/dev/null 2>&1; done ) &
saver=$!
trap 'kill $saver 2>/dev/null || true; save_record' EXIT
cd "$EXP/src"
PYTHONPATH="$EXP/src/src" "$PY" benchmarks/gensis_scratch.py --data pcam --scale converged \
  --seeds "$SEEDS" --device "$DEVICE" --train "$DATA/train.zip" --test "$DATA/test.zip" \
  --out "$EXP/comparison" --json "$EXP/result.jsonl" --quiet
