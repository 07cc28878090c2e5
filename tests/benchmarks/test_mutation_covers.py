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
