"""Keep the converged comparison's evidence in the repository, so that a lost machine no longer
loses the figures of the seeds already in (issue 37).

The experiment's folder (``converged_comparison.sh``'s ``$EXP``) holds hundreds of megabytes of
checkpoints that cannot be committed; what a reader of the table needs is small: the running
table, every encoder's evaluation (kNN and linear figures, per-image correctness for McNemar), the
history of starts and stops, and each training run's curve (per epoch: mean loss, seconds, the
online kNN). ``save`` copies those into ``benchmarks/converged_record/<start>/``, one folder per
fresh start of the experiment (``<start>`` is the time of the first line of ``HISTORY``), so that
an experiment started again on a new machine does not overwrite what an earlier one measured.
``converged_comparison.sh`` saves every 10 minutes and when it stops; commit the folder.

    python benchmarks/converged_record.py save --exp ../issue37-comparison
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from gensis.errors import GensisError
from gensis.runtime.trust import read_owned

RECORD = Path(__file__).resolve().parent / "converged_record"
TEXT = ("HISTORY", "REVISION", "THREADS", "result.jsonl", "comparison/table.md")
MAX_BYTES = 64 * 2**20  # far above any file kept here; refuses a runaway file


def _read(path: Path) -> str | None:
    """A file's text (None when there is none), read as gensis reads its own files (never through a
    link, never a FIFO: ``trust.read_owned``); anything else is refused in one line."""
    if not (path.exists() or path.is_symlink()):
        return None
    try:
        return read_owned(path, MAX_BYTES).decode("utf-8", "replace")
    except (GensisError, OSError) as e:
        sys.exit(f"converged_record: {e}")


def start_stamp(exp: Path) -> str:
    """The experiment's first start (the first ``HISTORY`` line's time), as a folder name."""
    history = _read(exp / "HISTORY")
    if not history or not history.split():
        sys.exit(f"converged_record: {exp / 'HISTORY'} is missing or empty (no experiment of converged_comparison.sh)")
    return history.split()[0].replace(":", "")


def epoch_curve(metrics: str) -> list[dict[str, Any]]:
    """One row per epoch of a run's ``metrics.jsonl``: the mean of each logged loss over the epoch's
    records, the epoch's last clock, and any evaluation logged at its end (the online kNN)."""
    sums: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows: dict[int, dict[str, Any]] = {}
    last_epoch = 0
    for line in metrics.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if not isinstance(record, dict):
            continue
        epoch = int(record.get("epoch", last_epoch))
        last_epoch = epoch
        row = rows.setdefault(epoch, {"epoch": epoch})
        for key, value in record.items():
            if key.startswith("loss") and isinstance(value, (int, float)):
                sums[epoch][key] += value
                counts[epoch][key] += 1
            elif key.startswith(("knn", "monitor", "cond_gap")) or key in ("step", "time"):
                row[key] = value
    for epoch, row in rows.items():
        row.update({k: round(s / counts[epoch][k], 5) for k, s in sums[epoch].items()})
    return [rows[e] for e in sorted(rows)]


def save(exp: Path, record: Path = RECORD) -> Path:
    """The small evidence of ``exp`` into ``record/<start>/``; returns that folder."""
    out = record / start_stamp(exp)
    partial = out.with_name(out.name + ".partial")  # a kill mid-save leaves the last whole copy
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        _copy(exp, partial)
    except SystemExit:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return out


def _copy(exp: Path, partial: Path) -> None:
    """The kept files of ``exp`` into ``partial``."""
    for name in TEXT:
        text = _read(exp / name)
        if text is not None:
            (partial / Path(name).name).write_text(text, encoding="utf-8")
    comparison = exp / "comparison"
    for path in sorted((comparison / "eval").glob("*.json")):
        (partial / "eval").mkdir(exist_ok=True)
        (partial / "eval" / path.name).write_text(_read(path) or "", encoding="utf-8")
    for metrics in sorted(comparison.glob("*/metrics.jsonl")):
        (partial / "curves").mkdir(exist_ok=True)
        rows = epoch_curve(_read(metrics) or "")
        (partial / "curves" / f"{metrics.parent.name}.jsonl").write_text(
            "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("action", choices=("save",))
    p.add_argument("--exp", type=Path, required=True, help="the experiment folder of converged_comparison.sh")
    p.add_argument("--record", type=Path, default=RECORD)
    args = p.parse_args()
    if not args.exp.is_dir():
        sys.exit(f"converged_record: {args.exp} is not a folder")
    print(f"converged_record: kept in {save(args.exp, args.record)}")


if __name__ == "__main__":
    main()
