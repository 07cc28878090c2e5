"""The mutation score per module, from mutmut's results (issue 39).

Reads ``mutmut results --all true`` (one ``<module>.x_<function>__mutmut_<n>: <status>`` line per
mutant) and ``benchmarks/mutation_equivalent.tsv`` (mutants shown not to change behaviour, each
with its reason), and writes a Markdown table: killed / (all - equivalent) per module.

A timeout counts as killed (the mutant changed behaviour enough to hang a test); "no tests"
counts as survived: a mutated line that no test reaches is exactly what the score must show.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

KILLED = {"killed", "timeout", "segfault", "caught by type check"}
LINE = re.compile(r"^\s*(?P<name>[\w.]+__mutmut_\d+):\s*(?P<status>.+?)\s*$")


def module_of(mutant: str) -> str:
    """``gensis.eval.knn.x_knn_predict__mutmut_3`` -> ``gensis.eval.knn`` (methods: ``xǁClassǁm``)."""
    return mutant.split(".x")[0] if ".x" in mutant else mutant.rsplit(".", 1)[0]


def read_equivalent(path: Path) -> dict[str, str]:
    """name -> why; a third column, the mutated line, lets ``rebind`` follow a renumbered mutant."""
    return {name: why for name, (why, _) in read_equivalent_lines(path).items()}


def read_equivalent_lines(path: Path) -> dict[str, tuple[str, str]]:
    if not path.is_file():
        return {}
    out: dict[str, tuple[str, str]] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if raw.strip() and not raw.startswith("#"):
            name, why, line = (raw.split("\t") + ["", ""])[:3]
            if name.strip() in out:  # a second reason would silently replace the first
                raise SystemExit(f"mutation_score.py: {path}:{number}: {name.strip()} is listed twice")
            out[name.strip()] = (why.strip(), line.strip())
    return out


def mutated_line(name: str) -> str:
    """The line a mutant writes (the ``+`` lines of ``mutmut show``, whitespace collapsed)."""
    diff = subprocess.run([sys.executable, "-m", "mutmut", "show", name], capture_output=True, text=True).stdout
    return " ".join(" ".join(x[1:].split()) for x in diff.splitlines() if x.startswith("+") and not x.startswith("+++"))


def rebind(status: dict[str, str], listed: dict[str, tuple[str, str]], show=mutated_line) -> dict[str, str]:
    """The equivalents as they are named now. mutmut numbers a function's mutants in order, so an
    edit above a listed mutant renumbers it: an entry that no longer names a survivor moves to the
    one survivor of the same function that writes the same line (the entry's third column)."""
    out = {n: why for n, (why, _) in listed.items()}
    shown: dict[str, str] = {}  # each survivor's line, asked of mutmut once (a subprocess each)
    for name, (why, line) in listed.items():
        if not line or status.get(name, "gone") not in KILLED | {"gone"}:
            continue
        function = name.rsplit("__mutmut_", 1)[0]
        same = [
            n
            for n, st in status.items()
            if n.rsplit("__mutmut_", 1)[0] == function
            and st not in KILLED | {"not checked"}
            and n not in out
            and (shown[n] if n in shown else shown.setdefault(n, show(n))) == line
        ]
        if len(same) == 1:
            del out[name]
            out[same[0]] = why
    return out


def parse(text: str) -> dict[str, str]:
    return {m["name"]: m["status"] for m in map(LINE.match, text.splitlines()) if m}


def table(status: dict[str, str], equivalent: dict[str, str]) -> tuple[str, float]:
    per: dict[str, Counter] = defaultdict(Counter)
    for name, st in status.items():
        c = per[module_of(name)]
        c["all"] += 1
        if name in equivalent and st not in KILLED:  # a killed one is a stale entry (see stale())
            c["equivalent"] += 1
        elif st in KILLED:
            c["killed"] += 1
        elif st == "not checked":
            c["not checked"] += 1
        else:
            c["survived"] += 1
    rows = [
        "| module | mutants | equivalent | killed | survived | not checked | score |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    total = Counter()
    for mod in sorted(per):
        c = per[mod]
        total.update(c)
        rows.append(_row(mod, c))
    rows.append(_row("**all**", total))
    denom = total["all"] - total["equivalent"] - total["not checked"]
    return "\n".join(rows), (100.0 * total["killed"] / denom if denom else 0.0)


def stale(status: dict[str, str], equivalent: dict[str, str]) -> list[str]:
    """Listed as equivalent but killed or gone: mutmut renumbers a function's mutants when its code
    changes, so such an entry now names another mutant (or none) and must be checked again."""
    return sorted(n for n in equivalent if status.get(n, "gone") in KILLED | {"gone"})


def _row(name: str, c: Counter) -> str:
    denom = c["all"] - c["equivalent"] - c["not checked"]
    score = f"{100.0 * c['killed'] / denom:.1f} %" if denom else "-"
    return (
        f"| {name} | {c['all']} | {c['equivalent']} | {c['killed']} | {c['survived']} | {c['not checked']} | {score} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, help="saved `mutmut results --all true` output (default: run it)")
    ap.add_argument("--equivalent", type=Path, default=Path(__file__).with_name("mutation_equivalent.tsv"))
    ap.add_argument("--out", type=Path, help="write the table here too")
    ap.add_argument("--survivors", type=Path, help="write the surviving mutants' names here")
    args = ap.parse_args(argv)
    if args.results:
        text = args.results.read_text(encoding="utf-8")
    else:
        text = subprocess.run(["mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    status = parse(text)
    if not status:
        print("mutation_score: no mutant results (run `mutmut run` first)", file=sys.stderr)
        return 2
    listed = read_equivalent_lines(args.equivalent)
    equivalent = rebind(status, listed)
    for name in sorted(set(equivalent) - set(listed)):
        print(f"mutation_score: {name} is a renumbered equivalent (same line); rename it in the list", file=sys.stderr)
    md, score = table(status, equivalent)
    print(md)
    print(f"\nscore {score:.1f} % of non-equivalent mutants killed")
    for name in stale(status, equivalent):
        print(
            f"mutation_score: stale equivalent entry {name} ({status.get(name, 'not in the results')}): "
            "check its diff (mutmut show) and fix the name",
            file=sys.stderr,
        )
    if args.out:
        args.out.write_text(md + f"\n\nscore {score:.1f} % of non-equivalent mutants killed\n", encoding="utf-8")
    if args.survivors:
        left = sorted(n for n, st in status.items() if st not in KILLED and st != "not checked" and n not in equivalent)
        args.survivors.write_text("".join(f"{n}\t{status[n]}\n" for n in left), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
