"""List the images in a folder tree or a ``.zip``, and read one image's bytes.

Both sources share one layout rule: when every image has a first-level folder, that folder
name is its class (classes sorted by name give the label index); when any image lies at the
root, the whole set is unlabelled. Ids are ``/``-separated paths relative to the root (the
member name in a zip), and items are sorted by id so the order is the same on every run and
platform. Hidden files and folders (leading ``.``, and macOS ``__MACOSX`` folders in zips)
and files without an image extension are ignored silently.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gensis.config.base import MAX_IMAGE_BYTES
from gensis.errors import DataError
from gensis.runtime.trust import display, read_regular, regular_file_problem

from .decode import one_line

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
SUPPORTED_KINDS = "a folder of images, a .zip of images, or a .npz with an 'images' array"

SourceKind = Literal["folder", "zip", "npz"]


@dataclass
class Listing:
    """The items of a folder or zip, sorted by id, before any image is decoded."""

    kind: SourceKind
    ids: list[str]
    sizes: list[int]  # bytes on disk (uncompressed size in a zip)
    stamps: list[str]  # change detector per item: zip CRC32 or file mtime_ns
    labels: list[int] | None
    class_names: list[str] | None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason) at listing
    notes: list[str] = field(default_factory=list)  # layout warnings, logged by the loader

    def take(self, keep: list[int]) -> Listing:
        """A listing with only the items at positions ``keep``."""
        return Listing(
            kind=self.kind,
            ids=[self.ids[i] for i in keep],
            sizes=[self.sizes[i] for i in keep],
            stamps=[self.stamps[i] for i in keep],
            labels=None if self.labels is None else [self.labels[i] for i in keep],
            class_names=self.class_names,
            skipped=list(self.skipped),
            notes=list(self.notes),
        )


def source_kind(path: Path) -> SourceKind:
    """Classify ``path`` or raise :class:`DataError` for a missing or unsupported one."""
    if not path.exists():
        raise DataError(f"no such file or folder: {path}")
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if path.is_file() and suffix in (".zip", ".npz"):
        return "zip" if suffix == ".zip" else "npz"
    raise DataError(f"unsupported data source {path}: expected {SUPPORTED_KINDS}")


def is_image_name(name: str) -> bool:
    """A visible file name with an image extension (case-insensitive)."""
    stem, _, ext = name.rpartition(".")
    return bool(stem) and not name.startswith(".") and f".{ext.lower()}" in IMAGE_EXTENSIONS


def list_folder(root: Path, strict: bool = False, max_bytes: int = MAX_IMAGE_BYTES) -> Listing:
    """Walk ``root`` (following symlinks, once per real folder) and stat every image: only regular
    files of at most ``max_bytes`` are kept (a FIFO or a link to a device named like an image is
    skipped, named, and never opened)."""
    ids: list[str] = []
    sizes: list[int] = []
    stamps: list[str] = []
    skipped: list[tuple[str, str]] = []
    seen_dirs: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen_dirs:  # a symlink loop or a second link to a folder
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in filenames:
            if not is_image_name(name):
                continue
            item_id = prefix + name
            try:
                fst = os.stat(os.path.join(dirpath, name))
            except OSError as err:  # a dangling symlink or a file removed while listing
                reason = one_line(f"cannot stat: {err.strerror or err}")
                if strict:
                    raise DataError(f"unreadable image {display(root / item_id)}: {reason}") from None
                skipped.append((item_id, reason))
                continue
            problem = regular_file_problem(fst, max_bytes)
            if problem is not None:
                if strict:
                    raise DataError(f"unreadable image {display(root / item_id)}: {problem}") from None
                skipped.append((item_id, problem))
                continue
            ids.append(item_id)
            sizes.append(fst.st_size)
            stamps.append(str(fst.st_mtime_ns))
    return _finish("folder", root, ids, sizes, stamps, skipped)


def list_zip(path: Path, max_bytes: int = MAX_IMAGE_BYTES) -> Listing:
    """List the image members of a zip without extracting anything (refused when a member name
    occurs twice; a member over ``max_bytes`` uncompressed is skipped, named)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as err:
        raise DataError(f"cannot read zip archive {path}: {one_line(err)}") from None
    members: dict[str, zipfile.ZipInfo] = {}
    unsafe: list[str] = []
    oversize: list[tuple[str, str]] = []
    for info in infos:
        name = info.filename
        if info.is_dir():
            continue
        folder, _, base = name.rpartition("/")
        if not is_image_name(base):
            continue
        parts = folder.split("/") if folder else []
        # absolute, drive-letter, empty or ".." components: not a path inside the archive
        if name.startswith("/") or "\\" in name or (parts and ":" in parts[0]) or any(p in ("", "..") for p in parts):
            unsafe.append(name)
            continue
        if any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        if info.file_size > max_bytes:
            oversize.append((name, f"{info.file_size:,} bytes, over the size cap max_image_bytes={max_bytes:,}"))
            continue
        if name in members:  # which copy a reader gets is undefined
            raise DataError(
                f"{display(path)}: the zip holds the image {display(name)!r} more than once; which copy "
                "is read is undefined, so it is refused"
            )
        members[name] = info
    names = sorted(members)
    sizes = [members[n].file_size for n in names]
    stamps = [f"{members[n].CRC:08x}" for n in names]
    listing = _finish("zip", path, names, sizes, stamps, oversize)
    if unsafe:
        listing.notes.append(
            f"{path}: skipped {len(unsafe)} member(s) whose path leaves the archive's tree "
            f"(absolute, a drive, '..' or an empty folder name): {', '.join(unsafe[:3])}"
        )
    return listing


def _finish(
    kind: SourceKind, root: Path, ids: list[str], sizes: list[int], stamps: list[str], skipped: list[tuple[str, str]]
) -> Listing:
    """Sort by id and derive labels from the first path component."""
    order = sorted(range(len(ids)), key=ids.__getitem__)
    ids = [ids[i] for i in order]
    sizes = [sizes[i] for i in order]
    stamps = [stamps[i] for i in order]
    at_root = sum(1 for i in ids if "/" not in i)
    labels: list[int] | None = None
    class_names: list[str] | None = None
    notes: list[str] = []
    if ids and at_root == 0:
        tops = [i.split("/", 1)[0] for i in ids]
        class_names = sorted(set(tops))
        index = {c: k for k, c in enumerate(class_names)}
        labels = [index[t] for t in tops]
        if len(class_names) == 1:
            notes.append(
                f"all images in {root} are in one folder {class_names[0]!r}, so there is a "
                "single class; put one subfolder per class directly under the root for labels"
            )
    elif 0 < at_root < len(ids):
        notes.append(
            f"{at_root} of {len(ids)} images lie directly in {root}, not in a class subfolder; "
            "the subfolder names are ignored and the images are unlabelled"
        )
    return Listing(kind, ids, sizes, stamps, labels, class_names, sorted(skipped), notes)


class ItemReader:
    """Reads one item's bytes by id; picklable, so it can travel to DataLoader workers.

    A zip handle is opened lazily and reopened after a fork: a handle shared between
    processes would share its file offset and return garbage.
    """

    def __init__(self, kind: SourceKind, root: str | Path, max_bytes: int = MAX_IMAGE_BYTES) -> None:
        if kind not in ("folder", "zip"):
            raise ValueError(f"ItemReader reads folders and zips, not {kind}")
        self.kind = kind
        self.root = str(root)
        self.max_bytes = max_bytes
        self._zip: zipfile.ZipFile | None = None
        self._pid = -1

    def read(self, item_id: str) -> bytes:
        if self.kind == "folder":  # a regular file under the cap: a FIFO or /dev/zero swapped in after listing too
            return read_regular(os.path.join(self.root, item_id), self.max_bytes, "image")
        if self._zip is None or self._pid != os.getpid():
            self._zip = zipfile.ZipFile(self.root)
            self._pid = os.getpid()
        with self._zip.open(item_id) as f:
            data = f.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise DataError(f"{display(self.display(item_id))}: over the size cap max_image_bytes={self.max_bytes:,}")
        return data

    def display(self, item_id: str) -> str:
        """How to name an item in a message: ``<root>/<id>`` (bytes that are not UTF-8 escaped)."""
        return display(f"{self.root}/{item_id}")

    def __getstate__(self) -> dict:
        return {"kind": self.kind, "root": self.root, "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["kind"], state["root"], state.get("max_bytes", MAX_IMAGE_BYTES))  # type: ignore[misc]
