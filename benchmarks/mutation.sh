#!/usr/bin/env bash
# The mutation score of the modules that decide what a user reads (issue 39).
#
#   pip install -e ".[test,mutation]"
#   bash benchmarks/mutation.sh                      # every listed module ([tool.mutmut] in pyproject.toml)
#   bash benchmarks/mutation.sh 'gensis.eval.knn*'   # only these mutants (mutmut's name globs)
#   bash benchmarks/mutation.sh --rerun-survivors    # again, every mutant that survived, met no test or timed out
#
#   bash benchmarks/mutation.sh --fresh              # ignore the kept verdicts (benchmarks/mutation_record.json)
#   MUTATION_TIMES=$PWD/t.tsv bash benchmarks/mutation.sh ...   # time each mutant (benchmarks/mutation_time.py)
#
# mutmut copies src/ into ./mutants, runs the selected test files once to learn which tests reach
# which function, then runs each mutant against only those tests (the cheapest first; for ten modules only
# the files that cover them: tests/_mutation_covers.py).
# It resumes where it stopped; delete ./mutants and pass --fresh to start over. The verdicts are also
# kept in benchmarks/mutation_record.json (every 10 minutes and at the end; commit it), and a fresh
# ./mutants starts from them (benchmarks/mutation_record.py), so that a run outlives its machine.
# Writes mutants/score.md (per-module table) and mutants/survivors.tsv (what no test caught);
# equivalent mutants are listed, with the reason, in benchmarks/mutation_equivalent.tsv. A resumed
# run lets every recorded result stand, so a survivor killed by a test written later counts as
# killed only after --rerun-survivors (which also reruns a timeout: a run paused with SIGSTOP times out
# the mutant it was running).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
"$PY" -c "import mutmut" 2>/dev/null || { echo "mutation.sh: mutmut is not installed (pip install -e '.[test,mutation]')" >&2; exit 2; }
# A path of the selection that is not a file makes mutmut's first pytest run fail after a long start:
# name it here instead.
"$PY" - <<'PY' || exit 2
import pathlib, sys, tomllib
cfg = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["tool"]["mutmut"]
for key in ("only_mutate", "pytest_add_cli_args_test_selection"):
    for path in cfg[key]:
        if not pathlib.Path(path).is_file():
            sys.exit(f"mutation.sh: pyproject.toml [tool.mutmut] {key}: {path} is not a file")
PY
start=$(date +%s)
# MUTATION_TIMES=FILE: each mutant's test time (tests/_mutation_covers.py), for benchmarks/mutation_time.py
if [ -n "${MUTATION_TIMES:-}" ]; then
  case "$MUTATION_TIMES" in /*) ;; *) echo "mutation.sh: MUTATION_TIMES must be an absolute path (mutmut runs in ./mutants)" >&2; exit 2 ;; esac
  printf 'run-start\t%s\n' "$start" >> "$MUTATION_TIMES"
fi
if [ "${1:-}" = "--fresh" ]; then
  shift
elif [ ! -d mutants ]; then
  "$PY" benchmarks/mutation_record.py restore
fi
if [ "${1:-}" = "--rerun-survivors" ]; then
  shift
  mapfile -t again < <("$PY" -m mutmut results --all true | sed -n 's/^ *\([^ ]*__mutmut_[0-9]*\): \(survived\|no tests\|timeout\)$/\1/p')
  [ "${#again[@]}" -gt 0 ] || { echo "mutation.sh: no survivors to run again" >&2; exit 0; }
  set -- "${again[@]}" "$@"
fi
( while sleep 600; do "$PY" benchmarks/mutation_record.py save >/dev/null 2>&1 || true; done ) &
saver=$!
trap 'kill $saver 2>/dev/null || true' EXIT
"$PY" -m mutmut run --max-children "${MUTATION_JOBS:-2}" "$@" || true   # mutmut exits non-zero when mutants survive
echo "mutation.sh: mutmut ran $(( $(date +%s) - start )) s"
[ -z "${MUTATION_TIMES:-}" ] || printf 'run-end\t%s\n' "$(date +%s)" >> "$MUTATION_TIMES"
"$PY" benchmarks/mutation_record.py save
"$PY" -m mutmut results --all true > mutants/results.txt
"$PY" benchmarks/mutation_score.py --results mutants/results.txt --out mutants/score.md --survivors mutants/survivors.tsv
