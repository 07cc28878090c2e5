"""The covering test files of a mutated module (tests/_mutation_covers.py): each one is a file of
mutmut's selection, so a typo cannot silently leave a module's mutants without tests."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from _mutation_covers import COVERS, mutant_module

ROOT = Path(__file__).resolve().parents[2]


def test_every_covering_file_is_in_mutmuts_selection_and_every_module_is_mutated() -> None:
    mutmut = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    selection = set(mutmut["pytest_add_cli_args_test_selection"])
    mutated = {path.removeprefix("src/").removesuffix(".py").replace("/", ".") for path in mutmut["only_mutate"]}
    for module, files in COVERS.items():
        assert module in mutated, module
        assert set(files) <= selection, (module, set(files) - selection)


def test_a_mutants_module_from_its_name_for_functions_and_methods() -> None:
    assert mutant_module("gensis.ssl.losses.dino_loss.x_dino_loss__mutmut_3") == "gensis.ssl.losses.dino_loss"
    assert mutant_module("gensis.data.dataset.xǁImageDataǁ_decode__mutmut_12") == "gensis.data.dataset"


def test_a_mutants_session_time_is_written_only_under_a_mutant_with_a_file(tmp_path, monkeypatch) -> None:
    from _mutation_covers import time_session

    out = tmp_path / "times.tsv"
    monkeypatch.setenv("MUTATION_TIMES", str(out))
    for under_test in ("", "stats", "list_all_tests"):  # mutmut's own runs: nothing written
        monkeypatch.setenv("MUTANT_UNDER_TEST", under_test)
        time_session(finished=False)
        time_session(finished=True, exitstatus=0)
    assert not out.exists()
    monkeypatch.setenv("MUTANT_UNDER_TEST", "gensis.eval.knn.x_knn__mutmut_3")
    time_session(finished=False)
    time_session(finished=True, exitstatus=1)
    name, start, end, status = out.read_text().strip().split("\t")
    assert name == "gensis.eval.knn.x_knn__mutmut_3" and status == "1" and 0 <= float(end) - float(start) < 5


def test_the_full_run_estimate_by_hand() -> None:
    """One run: sessions 0-2, 3-5, 5.5-6.5, 7-10 s after a start at -10 (set-up 10 s), gaps 1, 0.5, 0.5
    (mean 2/3, which the first session takes). Three of 10 killed mutants timed: costs 2.667, 3, 1.5,
    mean 2.389, sd 0.7876, t(0.975, 2) = 4.3027, finite population sqrt(1 - 3/10): half-width 1.637 a
    mutant; the one mutant not killed timed: 3.5 s exactly."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mutation_time import estimate

    killed = [f"gensis.eval.knn.x_a__mutmut_{i}" for i in range(1, 11)]
    sessions = [(killed[0], 0.0, 2.0, 1), (killed[1], 3.0, 5.0, 1), (killed[2], 5.5, 6.5, 1)]
    sessions.append(("gensis.ssl.dino.x_b__mutmut_1", 7.0, 10.0, 0))
    verdicts = dict.fromkeys(killed, 1) | {"gensis.ssl.dino.x_b__mutmut_1": 0}
    text = estimate([(sessions, {"run-start": -10.0})], verdicts)
    assert "| killed | 10 | 3 | 2.39 (0.75 to 4.03) | 0.01 |" in text
    assert "| not killed | 1 | 1 | 3.50 (all timed) | 0.00 |" in text
    assert "(fork, pytest start): 0.67 s a mutant; the run's set-up (copy, stats, clean run): 10 s." in text
    assert "| gensis.eval.knn | 3 | 2.39 | 3.00 |" in text and "| gensis.ssl.dino | 1 | 3.50 | 3.50 |" in text
    assert "one worker: 0.01 h** (95 %: 0.01 to 0.01 h)" in text  # (10 + 23.89 + 3.5) / 3600 = 0.0104


def test_a_line_that_is_not_a_timing_line_is_named(tmp_path) -> None:
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mutation_time import read_times

    times = tmp_path / "times.tsv"
    times.write_text("run-start\t10\ngensis.a.x_f__mutmut_1\t11.0\tlate\t1\n")
    with pytest.raises(SystemExit, match=rf"^mutation_time.py: {re.escape(str(times))}:2: not a timing line \("):
        read_times(times)
    times.write_text("run-start\t10\nsomething else\n")
    with pytest.raises(SystemExit, match=r":2: not a timing line \(1 tab-separated fields\)$"):
        read_times(times)
    times.write_text("run-start\t10\ngensis.a.x_f__mutmut_1\t11.0\t12.5\t1\n")
    assert read_times(times) == ([("gensis.a.x_f__mutmut_1", 11.0, 12.5, 1)], {"run-start": 10.0})
