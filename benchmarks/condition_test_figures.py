"""The figures behind tests/generator/test_generator_follows_condition.py: the trained and the
zeroed-condition generator's source retrieval, loss gap and monitor curve, printed.

    python benchmarks/condition_test_figures.py --out runs/condition_test
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_generator_follows_condition as t  # noqa: E402
from _common import emit, header  # noqa: E402


class _Root:
    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, name: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/condition_test")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    root = t.digits.__wrapped__(_Root(Path(args.out)))
    result = header("condition_test_figures", torch.device("cpu"))
    for name, zero in (("conditioned", False), ("zeroed", True)):
        path, run, warnings = t._train(root, name, zero_condition=zero)
        result[name] = {
            **t._follows(root, path),
            "chance_top1": round(100 / t.N, 2),
            "monitor": [(r["step"], r["cond_gap_mid"]) for r in t._monitor_rows(run)],
            "warnings": warnings,
        }
    emit(result, args.json)


if __name__ == "__main__":
    main()
