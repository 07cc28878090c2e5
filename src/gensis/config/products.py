"""What each command writes and how gensis recognises it afterwards (issue 42, "outputs that
describe themselves").

A command's config declares its product beside the paths it writes (``product: ClassVar[Product]``);
config/commands.py lists them, and runtime/products.py answers from these declarations alone for
the output guard, the pipeline's done-checks and the loaders' messages. A new product is one
declaration here and one line in the table; runtime/ holds no product's file names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Product:
    """One kind of gensis output, as found on disk.

    ``kind`` names it in refusals (``... holds a gensis bank``) and ``described`` in a loader's
    message (``... is a view bank, not a gensis encoder``). A folder is recognised, in the table's
    order, by ``marker`` (a file that proves gensis wrote it: a JSON object that ``accepts`` takes,
    or any regular file when ``accepts`` is None), then, inside a run folder, by what it exported
    (``exports``, under ``exported/``), then by the files it ``holds``. Files are recognised by
    ``archive_members`` (a zip gensis wrote holds one of them), ``archive_state`` (a zip's resume
    state, ``<zip>.parts/<archive_state>``) and ``vouched_suffixes`` (a table or array whose sha256
    a marked sidecar records).
    """

    kind: str
    described: str = ""
    marker: str | None = None
    accepts: Callable[[Mapping[str, Any]], bool] | None = None
    exports: tuple[str, ...] = ()
    export_marker: str | None = None  # a file inside an exported folder of this kind
    holds: tuple[str, ...] = ()
    archive_members: tuple[str, ...] = ()
    archive_suffixes: tuple[str, ...] = ()  # the suffixes ``archive_members`` are looked for in
    archive_state: str | None = None
    vouched_suffixes: tuple[str, ...] = ()


RESULT_MARK = ("written_by", "gensis")  # in every result JSON: a rerun may replace the file


def format_is_gensis(data: Mapping[str, Any]) -> bool:
    """A JSON object whose ``format`` is one of gensis's (``gensis.<what>/<version>``)."""
    return str(data.get("format", "")).startswith("gensis.")
