"""How long a full mutation run takes, estimated from a timed random sample (issue 39).

mutmut's forkserver isolation records no duration per mutant, so the tests' conftest writes one
line per mutant when ``MUTATION_TIMES`` names a file (tests/_mutation_covers.py), and
benchmarks/mutation.sh adds the run's start and end:

    python benchmarks/mutation_time.py --draw 200 > sample.txt      # a seeded random sample of mutants
    MUTATION_TIMES=$PWD/times.tsv MUTATION_JOBS=1 bash benchmarks/mutation.sh $(cat sample.txt)
    python benchmarks/mutation_time.py --times times.tsv            # the estimate, in Markdown

A mutant's cost is its pytest session plus the gap before it (mutmut forking the next child and
pytest starting, measured between consecutive sessions of one worker). The full run is estimated as
the run's set-up (mutmut's copy, stats and clean run: start to the first session) plus N times the
sample's mean cost, with a Student-t 95 % interval (n - 1 df, finite-population corrected). Two
workers on two free cores would take about half the mutant time; that is an assumption, not a
measurement, and the output says so.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import random
import statistics
import sys
from pathlib import Path

from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _mutation_covers import mutant_module  # noqa: E402


def all_mutants(mutants_dir: Path) -> list[str]:
    """Every mutant name of the run (mutmut's ``.meta`` files under mutants/src)."""
    names: list[str] = []
    for meta in sorted((mutants_dir / "src").rglob("*.meta")):
        names += sorted(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    if not names:
        raise SystemExit(f"mutation_time.py: no mutants under {mutants_dir / 'src'} (run mutation.sh once)")
    return names


def read_times(path: Path) -> tuple[list[tuple[str, float, float, int]], dict[str, float]]:
    sessions, marks = [], {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 2:
            marks[parts[0]] = float(parts[1])
        elif len(parts) == 4:
            sessions.append((parts[0], float(parts[1]), float(parts[2]), int(parts[3])))
    sessions.sort(key=lambda s: s[1])
    return sessions, marks


def estimate(sessions: list[tuple[str, float, float, int]], marks: dict[str, float], population: int) -> str:
    if len(sessions) < 3:
        raise SystemExit("mutation_time.py: fewer than 3 timed mutants; nothing to estimate")
    # one worker: the gap before each session (after the first) is mutmut's per-mutant overhead
    costs = [(b[2] - b[1]) + max(0.0, b[1] - a[2]) for a, b in zip(sessions, sessions[1:], strict=False)]
    n = len(costs)
    mean, sd = statistics.fmean(costs), statistics.stdev(costs)
    fpc = math.sqrt(max(0.0, 1 - n / population))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) * fpc
    setup = sessions[0][1] - marks["run-start"] if "run-start" in marks else float("nan")
    gaps = [max(0.0, b[1] - a[2]) for a, b in zip(sessions, sessions[1:], strict=False)]
    per_module: dict[str, list[float]] = collections.defaultdict(list)
    for (name, *_), cost in zip(sessions[1:], costs, strict=True):
        per_module[mutant_module(name)].append(cost)
    lo, hi = population * (mean - half), population * (mean + half)
    lines = [
        f"Timed sample: {len(sessions)} mutants of {population} (the first one's gap unknown: {n} costs).",
        "",
        "| figure | seconds |",
        "|---|---:|",
        f"| a mutant's cost, mean (95 % t interval) | {mean:.2f} ({mean - half:.2f} to {mean + half:.2f}) |",
        f"| its pytest session, median / max | {statistics.median(c[2] - c[1] for c in sessions):.2f} / "
        f"{max(c[2] - c[1] for c in sessions):.2f} |",
        f"| mutmut's gap between sessions (fork, pytest start), mean | {statistics.fmean(gaps):.2f} |",
        f"| the run's set-up (copy, stats, clean run) | {setup:.0f} |",
        "",
        f"**A full run of {population} mutants, one worker: {(setup + population * mean) / 3600:.1f} h** "
        f"(mutant time {lo / 3600:.1f} to {hi / 3600:.1f} h, 95 %); two workers on two free cores would take "
        f"about {(setup + population * mean / 2) / 3600:.1f} h if they halve the mutant time (assumed, not measured).",
        "",
        "| module | timed | mean cost (s) |",
        "|---|---:|---:|",
    ]
    for module, values in sorted(per_module.items(), key=lambda kv: -statistics.fmean(kv[1])):
        lines.append(f"| {module} | {len(values)} | {statistics.fmean(values):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutants", type=Path, default=ROOT / "mutants", help="mutmut's folder (default ./mutants)")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--draw", type=int, metavar="N", help="print N mutant names drawn at random (seeded)")
    group.add_argument("--times", type=Path, help="the MUTATION_TIMES file of a run")
    ap.add_argument("--seed", type=int, default=39)
    args = ap.parse_args(argv)
    names = all_mutants(args.mutants)
    if args.draw is not None:
        drawn = random.Random(args.seed).sample(names, min(args.draw, len(names)))
        print("\n".join(sorted(drawn)))
        return 0
    if not args.times.is_file():
        raise SystemExit(f"mutation_time.py: {args.times} is not a file")
    sessions, marks = read_times(args.times)
    print(estimate(sessions, marks, len(names)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
