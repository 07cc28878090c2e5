"""Atomic file writes: temp file in the same folder, fsync, then rename.

A crash or a full disk mid-write leaves the previous file untouched, never a half file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from gensis.config.products import RESULT_MARK
from gensis.errors import GensisError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise GensisError(f"cannot write to {path.parent}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes 0600, and writers that recreate the file (safetensors) keep that: the
        # final file gets normal rights.
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        raise GensisError(f"could not write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    """UTF-8; a file name that was not UTF-8 (surrogate-escaped when read) is written back as its bytes."""
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8", errors="surrogateescape"))


def write_result_json(path: str | Path, result: dict) -> None:
    """A command's result as JSON, marked as gensis's."""
    atomic_write_text(path, json.dumps({**result, RESULT_MARK[0]: RESULT_MARK[1]}, indent=2) + "\n")


def relative_path(target: str | Path, base: Path) -> str:
    """``target`` relative to the folder ``base`` when it is a local path ("" for a hub id): recorded
    beside the absolute path, so that a moved or copied run folder still finds what it depends on."""
    target = Path(target)
    if not target.exists():
        return ""
    return os.path.relpath(target.resolve(), base.resolve())


def recorded_path(recorded: str, relative: str | None, base: Path) -> str:
    """Where a recorded dependency is now: beside the product (``base / relative``) when it is there,
    since that moves with the run folder, else the recorded absolute path or hub id. Callers check
    the dependency's sha256 afterwards, so a file found either way is the one recorded."""
    if relative:
        here = base / relative
        if here.exists():
            return os.path.normpath(here)
    return recorded


def file_sha256(path: str | Path) -> str:
    """Content hash of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_safetensors(path: str | Path, fmt: str, what: str) -> tuple[dict, dict[str, str]]:
    """Tensors and metadata of a gensis safetensors file whose metadata ``format`` is ``fmt``;
    a one-line CheckpointError naming the file otherwise (``what``: e.g. "gensis generator")."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from gensis.errors import CheckpointError

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt or not a safetensors file ({exc})") from None
    if meta.get("format") != fmt:
        raise CheckpointError(f"{path}: not a {what} (metadata format={meta.get('format')!r})")
    return tensors, meta


def safetensors_bytes(tensors: dict, metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file whose bytes depend only on the tensors and metadata.

    The safetensors writer orders the header through a hash map, so the same export differs
    byte for byte from call to call (and its sha256, which banks and generators check). The
    header is rewritten as JSON with sorted keys; tensor offsets are relative to the data
    section, so only the header's length and its 8-byte padding change.
    """
    import json

    from safetensors.torch import save

    raw = save(tensors, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + raw[8 + n :]


def save_safetensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Atomic, byte-deterministic safetensors write (see :func:`safetensors_bytes`)."""
    data = safetensors_bytes(tensors, metadata)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
