"""Outputs that describe themselves (issue 42, step 3): every command declares its product on its
config, one table lists them, and runtime/ answers from that table without naming a product's files."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from gensis.config.commands import COMMAND_CONFIGS, PRODUCTS, product_of
from gensis.config.schema import GenerateConfig, PipelineConfig, PretrainConfig, ShowConfig, TrainGeneratorConfig
from gensis.runtime import products

RUNTIME = Path(__file__).resolve().parents[2] / "src" / "gensis" / "runtime"


def _file_names(product) -> set[str]:
    return {
        n
        for n in (
            product.marker,
            product.export_marker,
            product.archive_state,
            *product.exports,
            *product.holds,
            *product.archive_members,
        )
        if n
    }


def test_every_declared_product_is_in_the_table_once() -> None:
    declared = [product_of(cls) for cls in COMMAND_CONFIGS.values()]
    assert {p.kind for p in declared if p is not None} == {p.kind for p in PRODUCTS}
    assert len({p.kind for p in PRODUCTS}) == len(PRODUCTS)
    assert product_of(COMMAND_CONFIGS["eval"]) is None  # a result file only


def test_runtime_names_no_product_file() -> None:
    names = set().union(*map(_file_names, PRODUCTS)) - {"*/extra/gensis.json"}
    found = []
    for path in sorted(RUNTIME.glob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(n.body[0].value)
            for n in ast.walk(tree)  # prose may name what it explains
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
            and n.body
            and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                found += [f"{path.name}:{node.lineno} {n}" for n in names if n in node.value]
    assert not found, found


def test_a_folder_is_named_by_the_declaration_it_matches(tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    bank.mkdir()
    (bank / "index.json").write_text(json.dumps({"format": "gensis.view-bank/1"}))
    assert products.folder_kind(bank) == GenerateConfig.product.kind == "bank"
    (bank / "index.json").write_text(json.dumps({"format": "other/1"}))  # the name alone proves nothing
    assert products.folder_kind(bank) is None and not products.folder_is_gensis(bank)

    run = tmp_path / "run"
    (run / "exported").mkdir(parents=True)
    (run / "exported" / "encoder.safetensors").write_bytes(b"")
    assert products.folder_kind(run) == "pretrain run"
    (run / "exported" / "generator.safetensors").write_bytes(b"")  # the table's order: a generator run first
    assert products.folder_kind(run) == TrainGeneratorConfig.product.kind
    assert products.described_kind(run) == "a train-generator run folder"

    pictures = tmp_path / "pictures"
    pictures.mkdir()
    (pictures / "interpolations.png").write_bytes(b"")
    assert products.folder_kind(pictures) == ShowConfig.product.kind
    assert products.described_kind(pictures) is None  # no loader reads pictures


def test_the_pipeline_state_marker(tmp_path: Path) -> None:
    product = PipelineConfig.product
    assert products.marker_state(tmp_path, product) is None  # no file
    (tmp_path / "pipeline.json").write_text(json.dumps({"stages": {"x": {"last": "ran"}}}))
    assert products.marker_state(tmp_path, product) is None  # unmarked and no seconds: not ours
    (tmp_path / "pipeline.json").write_text(json.dumps({"written_by": "gensis", "stages": {}}))
    assert products.marker_state(tmp_path, product) == {"written_by": "gensis", "stages": {}}
    assert products.folder_kind(tmp_path) == "pipeline"


def test_exported_path_is_what_the_pipeline_waits_for(tmp_path: Path) -> None:
    from gensis.config.autoencoder import TrainAutoencoderConfig

    assert products.exported_path(tmp_path, TrainGeneratorConfig.product) == (
        tmp_path / "exported" / "generator.safetensors"
    )
    assert products.exported_path(tmp_path, TrainAutoencoderConfig.product) == (
        tmp_path / "exported" / "autoencoder" / "gensis.json"
    )
    assert products.exported_path(tmp_path, PretrainConfig.product).name == "encoder.safetensors"


def test_the_command_table_and_the_config_table_name_the_same_commands() -> None:
    """One row per command in each (gensis/commands.py drives the parser, the dispatch and the API)."""
    from gensis import api
    from gensis.commands import COMMANDS

    assert list(COMMANDS) == list(COMMAND_CONFIGS)
    for name, command in COMMANDS.items():
        module, function = command.runner.split(":")
        assert callable(command.public_function()), name
        assert module.startswith("gensis.") and function.startswith("run"), name
    assert COMMANDS["eval"].public_function() is api.evaluate
