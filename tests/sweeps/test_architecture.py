"""The layout promises of docs/ARCHITECTURE.md, checked by parsing the source (issue 25).

- No import cycle between the packages of src/gensis: every import counts, lazy ones inside
  functions too (a lazy import that only breaks a cycle is still a cycle), except those under
  ``if TYPE_CHECKING``.
- No import cycle between files either: module-level imports, and lazy ones inside functions
  too (``runtime/checkpoint.py`` <-> ``runtime/guards.py`` was one, through a lazy import).
- ``runtime/`` (infrastructure) imports nothing above it: only errors, config and models.
- No function in src/ is longer than 60 lines unless the line above its ``def`` says why
  (``# long: <reason>``).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "gensis"
RUNTIME_MAY_IMPORT = {"errors", "config", "models"}
MAX_LINES = 60


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), filename=str(path))
    return out


def _imports(tree: ast.Module, module_level_only: bool) -> set[str]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m == "gensis" or m.startswith("gensis.")}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "gensis"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return stack[stack.index(w) :] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        stack.pop()
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for name, tree in _modules().items():
        src = _package(name)
        graph.setdefault(src, set()).update(p for p in map(_package, _imports(tree, False)) if p != src)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def _file_graph(module_level_only: bool) -> dict[str, set[str]]:
    modules = _modules()
    graph = {
        name: {m for m in _imports(tree, module_level_only) if m in modules and m != name}
        for name, tree in modules.items()
    }
    # A package's __init__ re-exporting its own modules is not a cycle between files.
    return {name: {m for m in found if not m.startswith(name + ".")} for name, found in graph.items()}


def test_no_module_level_import_cycle() -> None:
    graph = _file_graph(module_level_only=True)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_import_cycle_between_files_lazy_imports_included() -> None:
    graph = _file_graph(module_level_only=False)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_file_cycle_check_sees_a_lazy_import() -> None:
    """The check itself: a cycle closed by an import inside a function is found."""
    lazy = ast.parse("def f():\n    from gensis.a import x\n")
    assert "gensis.a" in _imports(lazy, module_level_only=False)
    assert "gensis.a" not in _imports(lazy, module_level_only=True)
    assert _cycle({"gensis.a": {"gensis.b"}, "gensis.b": {"gensis.a"}}) == ["gensis.a", "gensis.b", "gensis.a"]


def test_runtime_imports_only_what_is_below_it() -> None:
    bad = {
        f"{name} imports {m}"
        for name, tree in _modules().items()
        if _package(name) == "runtime"
        for m in _imports(tree, False)
        if _package(m) not in RUNTIME_MAY_IMPORT | {"runtime"}
    }
    assert not bad, sorted(bad)


def test_functions_are_short_or_say_why() -> None:
    long = []
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if node.end_lineno - node.lineno + 1 > MAX_LINES and not lines[first - 2].strip().startswith(
                    "# long: "
                ):
                    long.append(
                        f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
                    )
    assert not long, long


def test_the_contract_check_names_what_a_method_lacks() -> None:
    """A submodule counts as a member (Python 3.12's runtime protocols missed DINO's student);
    a missing member is named."""
    from torch import nn

    from gensis.ssl.methods import missing_members

    class Partial(nn.Module):
        loss_parts: dict = {}

        def __init__(self) -> None:
            super().__init__()
            self.student = nn.Linear(2, 2)  # a submodule: in _modules, not in __dict__

        def update_teacher(self, momentum: float) -> None: ...

    lacks = missing_members(Partial())
    assert "student" not in lacks and "loss_parts" not in lacks and "update_teacher" not in lacks
    assert {
        "teacher_encoder",
        "momentum_start",
        "extra_state",
        "load_extra_state",
        "log_values",
        "after_backward",
    } <= set(lacks)


def test_every_registered_method_implements_the_contract() -> None:
    """The loop relies on SSLMethod alone; every name in the registry builds one."""
    from gensis.config.schema import ModelConfig, PretrainConfig
    from gensis.models.backbones import build_encoder
    from gensis.ssl.methods import METHODS, build_method, missing_members

    assert set(METHODS) == {"dino", "simclr", "mocov3"}
    for name in METHODS:
        cfg = PretrainConfig(
            method=name,
            model=ModelConfig(backbone="resnet10t", cifar_stem=True),
            augment={"n_local_crops": 0},
            dino={"out_dim": 16, "hidden_dim": 16, "bottleneck_dim": 8},
        )
        method = build_method(cfg, build_encoder(cfg.model, 8))
        assert missing_members(method) == [], name
        assert method.teacher_encoder is not None and isinstance(method.extra_state(), dict)
