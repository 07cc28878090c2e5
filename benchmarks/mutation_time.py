"""How long a full mutation run takes, estimated from a timed random sample (issue 39).

mutmut's forkserver isolation records no duration per mutant, so the tests' conftest writes one
line per mutant when ``MUTATION_TIMES`` names a file (tests/_mutation_covers.py), and
benchmarks/mutation.sh adds the run's start and end:

    python benchmarks/mutation_time.py --draw 200 > sample.txt      # a seeded random sample of mutants
    MUTATION_TIMES=$PWD/sample.tsv MUTATION_JOBS=1 bash benchmarks/mutation.sh $(cat sample.txt)
    MUTATION_TIMES=$PWD/rest.tsv MUTATION_JOBS=1 bash benchmarks/mutation.sh --rerun-survivors
    python benchmarks/mutation_time.py --times sample.tsv rest.tsv  # the estimate, in Markdown

A mutant's cost is its pytest session plus the gap before it (mutmut forking the next child and
pytest starting, measured between consecutive sessions of one worker). Costs are skewed: a killed
mutant stops at its first failing test (about a second), one not killed (equivalent, CUDA-only, a
real survivor) runs every covering test, fixtures that train a generator included. So the estimate
is stratified by each mutant's last verdict: the run's set-up (mutmut's copy, stats and clean run:
start to the first session) plus, per stratum, N times its timed mean cost with a Student-t 95 %
interval (n - 1 df, finite-population corrected), or the exact sum where every mutant of the stratum
was timed (--rerun-survivors times all that were not killed). Two workers on two free cores would
take about half the mutant time; that is an assumption, not a measurement, and the output says so.
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


def all_mutants(mutants_dir: Path) -> dict[str, int | None]:
    """Every mutant of the run and its last exit code (mutmut's ``.meta`` files under mutants/src)."""
    codes: dict[str, int | None] = {}
    for meta in sorted((mutants_dir / "src").rglob("*.meta")):
        codes.update(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    if not codes:
        raise SystemExit(f"mutation_time.py: no mutants under {mutants_dir / 'src'} (run mutation.sh once)")
    return codes


Session = tuple[str, float, float, int]


def read_times(path: Path) -> tuple[list[Session], dict[str, float]]:
    """One run's timed sessions (in start order) and its marks (run-start, run-end)."""
    sessions, marks = [], {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split("\t")
        try:
            if len(parts) == 2:
                marks[parts[0]] = float(parts[1])
            elif len(parts) == 4:
                sessions.append((parts[0], float(parts[1]), float(parts[2]), int(parts[3])))
            else:
                raise ValueError(f"{len(parts)} tab-separated fields")
        except ValueError as err:  # not a MUTATION_TIMES line: say where, not a traceback
            raise SystemExit(f"mutation_time.py: {path}:{number}: not a timing line ({err})") from None
    sessions.sort(key=lambda s: s[1])
    return sessions, marks


def costs(sessions: list[Session]) -> tuple[dict[str, float], float]:
    """Each mutant's session plus the gap before it (one worker); the first takes the run's mean gap."""
    gaps = [max(0.0, b[1] - a[2]) for a, b in zip(sessions, sessions[1:], strict=False)]
    mean_gap = statistics.fmean(gaps) if gaps else 0.0
    out = {sessions[0][0]: sessions[0][2] - sessions[0][1] + mean_gap} if sessions else {}
    for (name, start, end, _), gap in zip(sessions[1:], gaps, strict=True):
        out[name] = end - start + gap
    return out, mean_gap


def estimate(runs: list[tuple[list[Session], dict[str, float]]], verdicts: dict[str, int | None]) -> str:
    """The full run's time: set-up plus, per stratum of the last verdict (killed: a test failed and the
    rest of its tests were skipped; not killed: every covering test ran), N times the timed mean cost,
    or the exact sum where every mutant of the stratum was timed. Strata's 95 % half-widths add up
    (conservative)."""
    cost: dict[str, float] = {}
    gaps, setups = [], []
    for sessions, marks in runs:
        run_costs, gap = costs(sessions)
        cost.update(run_costs)
        if len(sessions) >= 2:
            gaps.append(gap)
        if sessions and "run-start" in marks:
            setups.append(sessions[0][1] - marks["run-start"])
    timed = {name: c for name, c in cost.items() if name in verdicts}
    if len(timed) < 3:
        raise SystemExit("mutation_time.py: fewer than 3 timed mutants of this run; nothing to estimate")
    setup = statistics.fmean(setups) if setups else 0.0
    gap = statistics.fmean(gaps) if gaps else 0.0
    lines = [
        f"Timed: {len(timed)} of {len(verdicts)} mutants in {len(runs)} run(s), one worker each.",
        "",
        "| stratum (last verdict) | mutants | timed | mean cost, s (95 % t interval) | total, h |",
        "|---|---:|---:|---|---:|",
    ]
    total = half_total = 0.0
    for label, member in (("killed", lambda code: code == 1), ("not killed", lambda code: code != 1)):
        names = [n for n, code in verdicts.items() if member(code)]
        values = [timed[n] for n in names if n in timed]
        if not names:
            continue
        if len(values) == len(names):
            stratum, half, mean_text = sum(values), 0.0, f"{statistics.fmean(values):.2f} (all timed)"
        elif len(values) >= 2:
            mean, sd = statistics.fmean(values), statistics.stdev(values)
            fpc = math.sqrt(1 - len(values) / len(names))
            half = float(stats.t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values)) * fpc * len(names)
            stratum = mean * len(names)
            mean_text = f"{mean:.2f} ({(stratum - half) / len(names):.2f} to {(stratum + half) / len(names):.2f})"
        else:
            raise SystemExit(f"mutation_time.py: fewer than 2 timed {label} mutants; time more of them")
        total, half_total = total + stratum, half_total + half
        lines.append(f"| {label} | {len(names)} | {len(values)} | {mean_text} | {stratum / 3600:.2f} |")
    lines += [
        "",
        f"mutmut's gap between sessions (fork, pytest start): {gap:.2f} s a mutant; "
        f"the run's set-up (copy, stats, clean run): {setup:.0f} s.",
        "",
        f"**A full run of {len(verdicts)} mutants, one worker: {(setup + total) / 3600:.2f} h** (95 %: "
        f"{(setup + total - half_total) / 3600:.2f} to {(setup + total + half_total) / 3600:.2f} h). Two workers "
        f"on two free cores: about {(setup + total / 2) / 3600:.2f} h if they halve the mutant time (assumed, "
        "not measured).",
        "",
        "| module | timed | mean cost (s) | max (s) |",
        "|---|---:|---:|---:|",
    ]
    per_module: dict[str, list[float]] = collections.defaultdict(list)
    for name, c in timed.items():
        per_module[mutant_module(name)].append(c)
    for module, values in sorted(per_module.items(), key=lambda kv: -sum(kv[1])):
        lines.append(f"| {module} | {len(values)} | {statistics.fmean(values):.2f} | {max(values):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutants", type=Path, default=ROOT / "mutants", help="mutmut's folder (default ./mutants)")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--draw", type=int, metavar="N", help="print N mutant names drawn at random (seeded)")
    group.add_argument("--times", type=Path, nargs="+", help="the MUTATION_TIMES files of runs (one worker each)")
    ap.add_argument("--seed", type=int, default=39)
    args = ap.parse_args(argv)
    verdicts = all_mutants(args.mutants)
    if args.draw is not None:
        drawn = random.Random(args.seed).sample(sorted(verdicts), min(args.draw, len(verdicts)))
        print("\n".join(sorted(drawn)))
        return 0
    for path in args.times:
        if not path.is_file():
            raise SystemExit(f"mutation_time.py: {path} is not a file")
    print(estimate([read_times(path) for path in args.times], verdicts), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
