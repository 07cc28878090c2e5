"""What gensis wrote, answered from the products the commands declare (config/products.py).

The output guard asks whether a file or folder is gensis's (may a rerun replace it?) and what
kind a folder holds; the pipeline asks for its state file; the loaders ask what a folder is to
name it in a refusal. Every answer reads the declarations in config/commands.py, so this module
knows only gensis's own conventions: the result mark, the lock, a run folder's marked
``config.yaml`` and its ``exported/`` folder, and the ``format`` entry of a file's metadata.
Every file is read as a regular file under a cap (runtime/trust.py): a FIFO named like a marker
must not hang the guard.
"""

from __future__ import annotations

import json
import stat
import zipfile
from fnmatch import fnmatchcase
from pathlib import Path

from safetensors import SafetensorError

from gensis.config.commands import PRODUCTS
from gensis.config.products import RESULT_MARK, Product
from gensis.config.schema import OWNERSHIP_FORMAT, ownership_sidecar
from gensis.errors import GensisError
from gensis.runtime import lock
from gensis.runtime.io import file_sha256
from gensis.runtime.run_folder import CONFIG_MARK, EXPORTED
from gensis.runtime.trust import MAX_TEXT_BYTES, read_regular


def _json_object(path: Path) -> dict | None:
    """A JSON object read from a regular file under a cap; None for anything else."""
    try:
        data = json.loads(read_regular(path, MAX_TEXT_BYTES, "JSON").decode("utf-8"))
    except (GensisError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _marked_json(path: Path) -> dict | None:
    """A JSON object gensis marked as its own, or None."""
    data = _json_object(path)
    return data if data is not None and data.get(RESULT_MARK[0]) == RESULT_MARK[1] else None


def safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return f.metadata() or {}


# ---- files --------------------------------------------------------------------------------------


def vouched_digests(sidecar: Path) -> dict[str, list[str]]:
    """The sha256s an ownership sidecar (``<stem>.gensis.json``, marked as gensis's) vouches for,
    by file name: one per file, or old and new while embed replaces them (eval/embed_io.py)."""
    data = _marked_json(sidecar)
    if not data or data.get("format") != OWNERSHIP_FORMAT or not isinstance(data.get("files"), dict):
        return {}
    return {
        name: [v for v in (digests if isinstance(digests, list) else [digests]) if isinstance(v, str)]
        for name, digests in data["files"].items()
    }


def _vouched_by_sidecar(path: Path) -> bool:
    """A table or array is gensis's when its marked sidecar holds its sha256: a header like
    ``file,label`` proves nothing (docs/refusals.md, "foreign-file")."""
    recorded = vouched_digests(ownership_sidecar(path)).get(path.name, [])
    return bool(recorded) and stat.S_ISREG(path.lstat().st_mode) and file_sha256(path) in recorded


def _archive_is_ours(path: Path, products: tuple[Product, ...]) -> bool:
    """A zip holding a member a product declares, or with that product's resume state beside it."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    for product in products:
        if product.archive_state and Path(f"{path}.parts", product.archive_state).is_file():
            return True
        if any(fnmatchcase(n, pattern) for pattern in product.archive_members for n in names):
            return True
    return False


def _format_metadata(path: Path, suffix: str) -> str:
    """The ``format`` a .safetensors or .parquet file records in its own metadata ("" if none)."""
    if suffix == ".safetensors":
        return str(safetensors_metadata(path).get("format", ""))
    import pyarrow.parquet as pq

    return (pq.read_schema(path).metadata or {}).get(b"format", b"").decode("utf-8", "replace")


def file_is_gensis(path: str | Path) -> bool:
    """Whether gensis wrote the file ``path`` (it may then be replaced by a rerun)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return False  # a link, a FIFO or a device is never gensis's to replace
        if suffix == ".json":
            return _marked_json(path) is not None
        if suffix in (".safetensors", ".parquet"):
            return _format_metadata(path, suffix).startswith("gensis.")
        if any(suffix in p.vouched_suffixes for p in PRODUCTS):
            return _vouched_by_sidecar(path)
        archives = tuple(p for p in PRODUCTS if suffix in p.archive_suffixes)
        if archives:
            return _archive_is_ours(path, archives)
    except (OSError, ValueError, UnicodeDecodeError, SafetensorError, zipfile.BadZipFile, ImportError):
        return False
    return False


# ---- folders ------------------------------------------------------------------------------------


def marker_state(root: Path, product: Product) -> dict | None:
    """The marker file of ``product`` in ``root`` when gensis wrote it (the JSON object, or an
    empty mapping for a marker that is any regular file), else None."""
    if product.marker is None:
        return None
    if product.accepts is None:
        return {} if (root / product.marker).is_file() else None
    data = _json_object(root / product.marker)
    return data if data is not None and product.accepts(data) else None


def _marked_kind(root: Path) -> str | None:
    """The kind a declared marker names, or "run" for a run folder's marked ``config.yaml``."""
    for product in PRODUCTS:
        if marker_state(root, product) is not None:
            return product.kind
    try:  # read as a regular file under a cap: a FIFO named config.yaml must not hang the guard
        head = read_regular(root / "config.yaml", MAX_TEXT_BYTES, "config").decode("utf-8", "replace")
    except (OSError, GensisError):
        return None
    return "run" if head.startswith(CONFIG_MARK) else None


def folder_is_gensis(path: str | Path) -> bool:
    """Whether ``path`` is a folder gensis writes: a locked output, a run or a declared product."""
    root = Path(path)
    if lock.is_gensis_lock(root):
        return True  # every output folder is locked while written
    if root.name.endswith(".parts") and any(p.archive_state and (root / p.archive_state).is_file() for p in PRODUCTS):
        return True  # an archive's resume state beside it
    return _marked_kind(root) is not None


def folder_kind(path: str | Path) -> str | None:
    """What a gensis folder holds (a product's ``kind``), "run" for a run that has not exported
    yet, or None when it holds nothing of a known kind (empty, or only its lock)."""
    root = Path(path)
    marked = _marked_kind(root)
    if marked not in (None, "run"):
        return marked
    for product in PRODUCTS:
        if any((root / EXPORTED / name).exists() for name in product.exports):
            return product.kind
    if marked == "run":
        return "run"
    for product in PRODUCTS:
        if any((root / name).is_file() for name in product.holds):
            return product.kind
    return None


def exported_path(run: str | Path, product: Product) -> Path:
    """What a finished run of ``product`` exported (the file inside it that an exported folder
    holds last): the pipeline's done-check for a training stage."""
    path = Path(run) / EXPORTED / product.exports[0]
    return path / product.export_marker if product.export_marker else path


def described_kind(folder: Path) -> str | None:
    """How a loader names the gensis folder ``folder`` when it expected another kind (an exported
    folder too), or None."""
    for product in PRODUCTS:
        if product.export_marker and (folder / product.export_marker).is_file():
            return product.described
    kind = folder_kind(folder)
    return next((p.described for p in PRODUCTS if p.kind == kind and p.described), None)


def run_folder_of(path: str | Path) -> Path | None:
    """The nearest gensis folder holding ``path`` (itself when it is one), or None."""
    p = Path(path).expanduser().resolve()
    for folder in ([p] if p.is_dir() else []) + list(p.parents):
        if folder_is_gensis(folder):
            return folder
    return None
