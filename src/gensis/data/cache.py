"""On-disk cache of decoded small-image datasets (``.npy`` pixels + ``.json`` metadata).

The key is a sha256 over the reader format version, the resolution, the source kind and,
per item, its id, size and change stamp (zip CRC32, file mtime_ns, or the hash of the npz
bytes). The source path is not part of the key, so a moved or copied dataset still hits.
Files are written atomically (temp file in the same folder, fsync, ``os.replace``), so a
crash or two concurrent writers never leave a half-written entry. A cache entry that cannot
be read back is reported with a warning and rebuilt; cache problems never stop a load.

Listing a 50,000-member zip (parsing its central directory) takes longer than reading the
cached pixels, so a zip also gets a small *ref* file: it maps the archive's identity
(resolved path, size, inode, mtime_ns and ctime_ns, which any rewrite changes) to the full
key, and a later load with an unchanged archive skips the listing. A stale or missing ref
only costs a full listing, never a wrong hit of a different key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .decode import one_line

log = logging.getLogger("gensis.data")

# Bump when decoding changes (resize, colour conversion...) so old entries are not reused.
READER_VERSION = 1


def resolve_cache_dir(cache_dir: str | Path | None) -> Path | None:
    """``"auto"`` -> ``$GENSIS_CACHE_DIR`` or ``~/.cache/gensis``; ``None`` -> no cache."""
    if cache_dir is None:
        return None
    if str(cache_dir) == "auto":
        env = os.environ.get("GENSIS_CACHE_DIR")
        return Path(env).expanduser() if env else Path.home() / ".cache" / "gensis"
    return Path(cache_dir).expanduser()


def cache_key(kind: str, resolution: int, items: Iterable[tuple[str, int, str]]) -> str:
    """sha256 hex over the format version, resolution, kind and (id, size, stamp) items."""
    h = hashlib.sha256(f"gensis-images v{READER_VERSION}\n{resolution}\n{kind}\n".encode())
    for item_id, size, stamp in items:
        h.update(f"{item_id}\0{size}\0{stamp}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


# v2: a folder's items are known by the sha256 of their bytes (v1: by name and size only, so
# a folder whose pixels all changed at the same sizes was the same data).
FOLDER_CONTENT_VERSION = 2


def content_key(kind: str, ids: list[str], sizes: list[int], contents: list[str]) -> str:
    """sha256 of what the items hold, independent of the resolution and of file times: id, size
    and ``contents`` per item: the CRC32 in a zip (stored there, free to read), the sha256 of
    the bytes in a folder (its mtimes change on a plain copy, so they cannot tell)."""
    version = FOLDER_CONTENT_VERSION if kind == "folder" else 1
    h = hashlib.sha256(f"gensis-content v{version}\n{kind}\n".encode())
    for item_id, size, stamp in zip(ids, sizes, contents, strict=True):
        h.update(f"{item_id}\0{size}\0{stamp}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def stat_key(path: Path, resolution: int, max_images: int | None, max_bytes: int | None = None) -> str:
    """Identity of an archive file that changes whenever it is rewritten (and, for a zip, with
    the size cap that decides which members it lists)."""
    st = path.stat()
    ident = (
        f"gensis-ref v{READER_VERSION}\n{path.resolve()}\n{st.st_size}\n{st.st_dev}\n"
        f"{st.st_ino}\n{st.st_mtime_ns}\n{st.st_ctime_ns}\n{resolution}\n{max_images}\n"
    ) + ("" if max_bytes is None else f"{max_bytes}\n")
    return hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()


def _ref_path(cache_dir: Path, source: Path, resolution: int, ref: str) -> Path:
    return entry_paths(cache_dir, source, resolution, ref)[0].with_suffix(".ref")


def read_ref(cache_dir: Path, source: Path, resolution: int, ref: str) -> str | None:
    """The full key recorded for this archive identity, if any."""
    try:
        text = _ref_path(cache_dir, source, resolution, ref).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if re.fullmatch(r"[0-9a-f]{64}", text) else None


def write_ref(cache_dir: Path, source: Path, resolution: int, ref: str, key: str) -> None:
    path = _ref_path(cache_dir, source, resolution, ref)
    if read_ref(cache_dir, source, resolution, ref) == key:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda f: f.write(key.encode("ascii")))
    except OSError as err:  # only a shortcut: save_entry already warned about a bad cache dir
        log.debug("could not write cache ref %s: %s", path, one_line(err))


def entry_paths(cache_dir: Path, source: Path, resolution: int, key: str) -> tuple[Path, Path]:
    """``<dir>/<source name>-<R>px-<key prefix>.npy`` and the matching ``.json``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source.name)[:60] or "data"
    base = cache_dir / f"{stem}-{resolution}px-{key[:24]}"
    return base.with_name(base.name + ".npy"), base.with_name(base.name + ".json")


def load_entry(npy: Path, meta_path: Path, key: str, resolution: int) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Return (images, metadata) for a valid entry, ``None`` on a miss or a corrupt entry."""
    if not (npy.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8", "surrogateescape"))
        if meta.get("key") != key:
            raise ValueError("key mismatch")
        # Copy-on-write mapping: writable, shares the page cache (no fresh memory, no copy),
        # and stays valid if a rebuild replaces the file, since os.replace keeps the inode.
        images = np.load(npy, mmap_mode="c", allow_pickle=False)
        n = len(meta["ids"])
        if images.dtype != np.uint8 or images.shape != (n, 3, resolution, resolution):
            raise ValueError(f"array {images.dtype} {images.shape} does not match {n} ids")
        if meta["labels"] is not None and len(meta["labels"]) != n:
            raise ValueError("labels do not match ids")
    except Exception as err:  # noqa: BLE001 - any unreadable entry is rebuilt, never fatal
        log.warning("ignoring corrupt cache %s (%s); rebuilding it", npy, one_line(err))
        return None
    return images, meta


def save_entry(npy: Path, meta_path: Path, images: np.ndarray, meta: dict[str, Any]) -> None:
    """Write both files atomically; a failure (read-only disk, full disk) only warns."""
    try:
        npy.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(npy, lambda f: np.save(f, images, allow_pickle=False))
        text = json.dumps(meta, ensure_ascii=False).encode("utf-8", "surrogateescape")
        _atomic_write(meta_path, lambda f: f.write(text))  # written last: marks the entry done
    except OSError as err:
        log.warning("could not write cache %s: %s", npy, one_line(err))
        return
    log.info("cached %d images in %s", len(images), npy)


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
