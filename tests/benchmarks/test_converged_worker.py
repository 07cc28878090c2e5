"""The converged comparison's second worker (issue 37) refuses, in one line, what would mix it into
the wrong experiment: seed 0 (the main run's pipeline), a folder that is not an experiment, a
thread count other than the experiment's (its seconds would not compare), and a worktree that is
not at the experiment's pinned revision."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parents[2] / "benchmarks" / "converged_worker.py"


def _worker(exp: Path, seeds: str, threads: str = "1") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(WORKER), "--exp", str(exp), "--seeds", seeds],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _experiment(exp: Path) -> Path:
    (exp / "src" / "benchmarks").mkdir(parents=True)
    (exp / "src" / "benchmarks" / "gensis_scratch.py").write_text("raise SystemExit('must not be imported')\n")
    (exp / "THREADS").write_text("1\n")
    (exp / "REVISION").write_text("4e1d0af257be04498f98d123bffce57409fefd88\n")
    return exp


@pytest.mark.parametrize(
    ("seeds", "threads", "make", "says"),
    [
        ("0,4", "1", True, "--seeds: seed 0 is the main run's pipeline"),
        ("4", "1", False, "not an experiment folder of converged_comparison.sh"),
        ("4", "2", True, "OMP_NUM_THREADS must be 1 ($EXP/THREADS)"),
        ("4", "1", True, "src/ is at no commit, not at REVISION 4e1d0af"),
        ("x", "1", True, "--seeds 'x': comma-separated whole numbers"),
    ],
)
def test_the_worker_refuses_in_one_line_before_it_imports_the_pinned_code(
    tmp_path: Path, seeds: str, threads: str, make: bool, says: str
) -> None:
    exp = _experiment(tmp_path / "exp") if make else tmp_path / "exp"
    done = _worker(exp, seeds, threads)
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr and "must not be imported" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("converged_worker.py: error: ")


def test_a_link_in_place_of_the_experiments_thread_count_is_refused(tmp_path: Path) -> None:
    exp = _experiment(tmp_path / "exp")
    (tmp_path / "elsewhere").write_text("1\n")
    (exp / "THREADS").unlink()
    (exp / "THREADS").symlink_to(tmp_path / "elsewhere")
    done = _worker(exp, "4")
    assert done.returncode == 2 and "not an experiment folder of converged_comparison.sh" in done.stderr
    assert "Traceback" not in done.stderr
