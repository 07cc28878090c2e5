"""The covering test files of a mutated module (tests/_mutation_covers.py): each one is a file of
mutmut's selection, so a typo cannot silently leave a module's mutants without tests."""

from __future__ import annotations

import tomllib
from pathlib import Path

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
    """Sessions 0-2, 3-5, 5.5-6.5, 7-10 s after a start at -10: costs (session + gap before it) 3, 1.5
    and 3.5, mean 8/3; sd 1.0408, t(0.975, 2) = 4.3027, finite-population factor sqrt(1 - 3/100):
    half-width 4.3027 * 1.0408 / sqrt(3) * 0.98489 = 2.546. Set-up 10 s; 100 mutants: 10 + 266.7 s."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mutation_time import estimate

    sessions = [("gensis.eval.knn.x_a__mutmut_1", 0.0, 2.0, 1), ("gensis.eval.knn.x_a__mutmut_2", 3.0, 5.0, 1)]
    sessions += [("gensis.ssl.dino.x_b__mutmut_1", 5.5, 6.5, 0), ("gensis.ssl.dino.x_b__mutmut_2", 7.0, 10.0, 1)]
    text = estimate(sessions, {"run-start": -10.0}, 100)
    assert "| a mutant's cost, mean (95 % t interval) | 2.67 (0.12 to 5.21) |" in text
    assert "| the run's set-up (copy, stats, clean run) | 10 |" in text
    assert "| mutmut's gap between sessions (fork, pytest start), mean | 0.67 |" in text
    assert "| gensis.ssl.dino | 2 | 2.50 |" in text and "| gensis.eval.knn | 1 | 3.00 |" in text
    assert "one worker: 0.1 h" in text  # (10 + 266.7) / 3600 = 0.077
