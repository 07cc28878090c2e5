"""The tree passes its linter and its formatter (issue 42): ``ruff check`` with the rules in pyproject.toml
and ``ruff format --check``, so the README's test command fails on a lint or format error as on a broken test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _ruff() -> list[str]:
    beside = Path(sys.executable).with_name("ruff")  # the venv's, pinned by the [test] extra
    return [str(beside)] if beside.is_file() else [shutil.which("ruff") or "ruff"]


def test_ruff_finds_nothing() -> None:
    done = subprocess.run(
        [*_ruff(), "check", "--no-cache", "--output-format", "concise", "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_ruff_format_changes_nothing() -> None:
    done = subprocess.run(
        [*_ruff(), "format", "--check", "--no-cache", "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
