"""Keep mutmut's verdicts in the repository, so that a mutation run outlives its machine (issue 39).

mutmut keeps each source file's verdicts in ``mutants/<file>.meta``, a folder that is not
committed: when the machine goes, so do hours of verdicts. ``save`` writes the verdicts and each
function's source hash to one small JSON file (``benchmarks/mutation_record.json``, committed);
``restore`` writes them back as ``.meta`` files into a fresh ``mutants/``. mutmut then keeps the
verdict of every function whose source hash is unchanged and runs the rest, as it does when it
resumes on the same machine. As with any resume, a survivor that a later test kills counts as
killed only after ``mutation.sh --rerun-survivors``.

    python benchmarks/mutation_record.py save      # after a run (mutation.sh does it)
    python benchmarks/mutation_record.py restore   # before one, into a fresh mutants/ (mutation.sh does it)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RECORD = Path("benchmarks/mutation_record.json")
KEPT = ("exit_code_by_key", "hash_by_function_name")  # what mutmut needs to let a verdict stand


def save(mutants: Path, record: Path) -> int:
    """The verdicts of every ``.meta`` under ``mutants/src`` into ``record``; the number of verdicts."""
    files = {}
    for meta in sorted((mutants / "src").rglob("*.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        files[str(meta.relative_to(mutants).with_suffix(""))] = {k: data.get(k, {}) for k in KEPT}
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    partial = record.with_suffix(".partial")  # a kill mid-write leaves the last whole record
    partial.write_text(json.dumps({"revision": revision, "files": files}, sort_keys=True, indent=0) + "\n")
    partial.replace(record)
    return sum(1 for f in files.values() for code in f["exit_code_by_key"].values() if code is not None)


def restore(mutants: Path, record: Path) -> int:
    """``record``'s verdicts as ``.meta`` files under ``mutants/`` (only where none is there yet)."""
    try:
        files = json.loads(record.read_text(encoding="utf-8"))["files"]
        assert isinstance(files, dict) and all(set(KEPT) <= set(kept) for kept in files.values())
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AssertionError):
        sys.exit(f"mutation_record: {record} is not a record of mutmut verdicts (--fresh ignores it)")
    n = 0
    for source, kept in files.items():
        meta = mutants / f"{source}.meta"
        if meta.exists():
            continue
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(
            json.dumps(
                {
                    **{k: kept[k] for k in KEPT},
                    "type_check_error_by_key": {},
                    "durations_by_key": {},
                    "estimated_durations_by_key": {},
                }
            )
        )
        n += sum(1 for code in kept["exit_code_by_key"].values() if code is not None)
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("action", choices=("save", "restore"))
    p.add_argument("--mutants", type=Path, default=Path("mutants"))
    p.add_argument("--record", type=Path, default=RECORD)
    args = p.parse_args()
    if args.action == "save":
        print(f"mutation_record: {save(args.mutants, args.record)} verdicts kept in {args.record}")
    elif args.record.exists() and not args.record.is_file():
        sys.exit(f"mutation_record: {args.record} is not a regular file")
    elif args.record.is_file():
        print(f"mutation_record: {restore(args.mutants, args.record)} verdicts restored from {args.record}")
    else:
        print(f"mutation_record: no {args.record}; every mutant runs", file=sys.stderr)


if __name__ == "__main__":
    main()
