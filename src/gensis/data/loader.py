"""``load_images``: one entry point for folders, zips and npz files.

Resolution <= 96: every image is decoded once into memory and cached on disk.
Resolution > 96: folders and zips stay lazy (decoded per batch), nothing is cached.
A ``.npz`` is always in memory. Unreadable files are skipped with one warning that counts
them (or raise with ``strict=True``); every user-fixable problem is a one-line
:class:`~gensis.errors.DataError` that names the path.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gensis.config.base import MAX_IMAGE_BYTES
from gensis.errors import DataError
from gensis.runtime.io import file_sha256

from . import cache, decode
from .dataset import ImageData
from .npz import npz_to_chw, read_npz
from .parallel import decode_many
from .sources import ItemReader, Listing, SourceKind, list_folder, list_zip, source_kind

log = logging.getLogger("gensis.data")

# Largest resolution that is decoded into memory (and cached); above it, lazy decoding.
MAX_IN_MEMORY_RESOLUTION = 96


def subset_indices(n: int, k: int) -> list[int]:
    """A fixed pseudo-random choice of k of n items, in ascending order (same on every run)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:k]
    return sorted(perm.tolist())


def load_training_images(
    data_cfg: Any, resolution: int, *, progress: bool = True, require_labels: bool = False
) -> ImageData:
    """The training images of a command's ``data`` section (path, strict, cache_dir,
    max_images, num_workers), with one error line when ``data.path`` is not given."""
    from gensis.errors import ConfigError

    if data_cfg.path is None:
        raise ConfigError("data.path: no training images given (data.path=<folder|.zip|.npz>)")
    return load_images(
        data_cfg.path,
        resolution,
        require_labels=require_labels,
        strict=data_cfg.strict,
        cache_dir=data_cfg.cache_dir,
        max_images=data_cfg.max_images,
        progress=progress,
        num_workers=data_cfg.num_workers,
        max_image_bytes=data_cfg.max_image_bytes,
    )


def load_images(
    path: str | Path,
    resolution: int,
    *,
    require_labels: bool = False,
    strict: bool = False,
    cache_dir: str | Path | None = "auto",
    max_images: int | None = None,
    progress: bool = True,
    num_workers: int = 2,
    max_image_bytes: int = MAX_IMAGE_BYTES,
) -> ImageData:
    """Load a folder tree, a ``.zip`` or a ``.npz`` as square RGB uint8 images.

    Args:
        path: folder (one subfolder per class for labels), zip with the same layout, or npz.
        resolution: side R of the square output; shorter side resized to R, centre crop.
        require_labels: raise :class:`DataError` if the source has no labels.
        strict: raise on the first unreadable image instead of skipping it.
        cache_dir: ``"auto"`` (``$GENSIS_CACHE_DIR`` or ``~/.cache/gensis``), a folder, or
            ``None`` for no cache. Only used for in-memory loads (R <= 96).
        max_images: keep a fixed pseudo-random subset of N items (seed 0, kept in id order),
            so a subset of a class-folder dataset still spans every class; chosen before
            decoding, so unreadable ones among them leave fewer than N.
        progress: show a tqdm bar while decoding.
        num_workers: decoder processes for in-memory loads (<= 1: decode in this process).
        max_image_bytes: a file or zip member larger than this is skipped with a warning naming
            it (so is anything that is not a regular file: a FIFO, a device).
    """
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    src = Path(path).expanduser()
    kind = source_kind(src)
    cache_root = cache.resolve_cache_dir(cache_dir)
    if kind == "npz":
        data = _load_npz(src, resolution, require_labels, cache_root, max_images)
    elif resolution > MAX_IN_MEMORY_RESOLUTION:
        listing = _list(src, kind, strict, require_labels, max_images, max_image_bytes)
        data = _lazy(src, listing, resolution, strict, max_image_bytes)
    else:
        data = _in_memory(
            src,
            kind,
            resolution,
            strict,
            require_labels,
            cache_root,
            max_images,
            num_workers,
            progress,
            max_image_bytes,
        )
    if require_labels and data.labels is None:
        raise _no_labels(src)
    return data


def _no_labels(src: Path) -> DataError:
    return DataError(f"{src} has no labels: put images in one subfolder per class (or add 'labels' to the .npz)")


def check_listing(path: str | Path, require_labels: bool = False, max_image_bytes: int = MAX_IMAGE_BYTES) -> None:
    """List a folder or zip without decoding (an npz is read when loaded): what :func:`load_images`
    would refuse at listing (a zip with a name twice, missing labels) is refused now, cheaply."""
    src = Path(path).expanduser()
    kind = source_kind(src)
    if kind != "npz":
        _list(src, kind, False, require_labels, None, max_image_bytes)


def _list(
    src: Path,
    kind: SourceKind,
    strict: bool,
    require_labels: bool,
    max_images: int | None,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> Listing:
    """List a folder or zip, report its layout, check labels, keep the first N items."""
    listing = list_folder(src, strict, max_bytes) if kind == "folder" else list_zip(src, max_bytes)
    for note in listing.notes:
        log.warning(note)
    if require_labels and listing.labels is None and listing.ids:
        raise _no_labels(src)  # before any decoding
    if max_images is not None and len(listing.ids) > max_images:
        listing = listing.take(subset_indices(len(listing.ids), max_images))
    return listing


def _lazy(src: Path, listing: Listing, resolution: int, strict: bool, max_bytes: int = MAX_IMAGE_BYTES) -> ImageData:
    """Keep the file list; only zero-byte files can be rejected without decoding. ``strict``
    decodes every file once here, so that an unreadable one stops the command at load, named,
    before any run folder is written (not from a loader worker, mid-training)."""
    skipped = list(listing.skipped)
    keep: list[int] = []
    for i, (item_id, size) in enumerate(zip(listing.ids, listing.sizes, strict=True)):
        if size > 0:
            keep.append(i)
            continue
        if strict:
            raise DataError(f"unreadable image {src}/{item_id}: empty file")
        skipped.append((item_id, "empty file"))
    kept = listing.take(keep)
    _check_not_empty(src, len(kept.ids), skipped)
    _warn_skipped(src, skipped)
    reader = ItemReader(listing.kind, src, max_bytes)
    return ImageData(
        images=None,
        labels=_label_tensor(kept.labels),
        class_names=kept.class_names,
        ids=kept.ids,
        source=str(src),
        resolution=resolution,
        reader=reader,
        strict=strict,
        content_key=cache.content_key(kept.kind, kept.ids, kept.sizes, _scan(reader, kept, resolution, strict)),
    )


def _scan(reader: ItemReader, listing: Listing, resolution: int, strict: bool) -> list[str]:
    """One pass over a lazy source's items: per item what tells its content (a zip's CRC32,
    else the sha256 of the file's bytes) and, with ``strict``, a decode, so that an unreadable
    file stops the command here, named. A zip is read only when ``strict``."""
    if listing.kind == "zip" and not strict:
        return listing.stamps
    contents = []
    for item_id, stamp in zip(listing.ids, listing.stamps, strict=True):
        try:
            try:
                data = reader.read(item_id)
            except Exception as err:  # noqa: BLE001 - missing file, permissions, bad CRC...
                raise decode.UnreadableImage(decode.one_line(f"cannot read: {err}")) from None
            if strict:
                decode.decode_image(data, resolution)
        except decode.UnreadableImage as err:
            if strict:
                raise DataError(f"unreadable image {reader.display(item_id)}: {err}") from None
            contents.append(f"unreadable: {err}")  # a batch that reads it will say so
            continue
        contents.append(stamp if listing.kind == "zip" else hashlib.sha256(data).hexdigest())
    return contents


def _in_memory(
    src: Path,
    kind: SourceKind,
    resolution: int,
    strict: bool,
    require_labels: bool,
    cache_root: Path | None,
    max_images: int | None,
    num_workers: int,
    progress: bool,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> ImageData:
    ref = known = None
    if cache_root is not None and kind == "zip":  # skip re-listing an unchanged archive
        ref, known, hit = _by_ref(src, resolution, strict, cache_root, max_images, max_bytes)
        if hit is not None:
            return hit

    listing = _list(src, kind, strict, require_labels, max_images, max_bytes)
    _check_not_empty(src, len(listing.ids), listing.skipped)
    key = cache.cache_key(kind, resolution, zip(listing.ids, listing.sizes, listing.stamps, strict=True))
    data = None
    if cache_root is not None and key != known:  # (a failed ref hit was this very entry)
        data = _from_cache(src, resolution, strict, cache_root, key, replay_notes=False)
    if data is None:
        reader = ItemReader(kind, src, max_bytes)
        digests: list[str] | None = [] if kind == "folder" else None
        images, bad = decode_many(
            reader,
            listing.ids,
            resolution,
            strict=strict,
            num_workers=num_workers,
            progress=progress,
            desc=f"decoding {src.name}",
            digests=digests,
        )
        bad_ids = {item_id for item_id, _ in bad}
        keep = [i for i, x in enumerate(listing.ids) if x not in bad_ids]
        kept = listing.take(keep)
        meta = {
            "ids": kept.ids,
            "labels": kept.labels,
            "class_names": kept.class_names,
            "skipped": sorted(listing.skipped + bad),
            "notes": listing.notes,
            "content": cache.content_key(
                kind, kept.ids, kept.sizes, kept.stamps if digests is None else [digests[i] for i in keep]
            ),
            "content_version": cache.FOLDER_CONTENT_VERSION if kind == "folder" else 1,
        }
        data = _store(src, resolution, cache_root, key, images, meta)
    if ref is not None and cache_root is not None:
        cache.write_ref(cache_root, src, resolution, ref, key)
    return data


def _load_npz(
    src: Path, resolution: int, require_labels: bool, cache_root: Path | None, max_images: int | None
) -> ImageData:
    ref = known = None
    if cache_root is not None and resolution <= MAX_IN_MEMORY_RESOLUTION:
        ref, known, hit = _by_ref(src, resolution, False, cache_root, max_images)
        if hit is not None:  # skips reading and hashing the whole file
            return hit
    contents = read_npz(src)
    if require_labels and contents.labels is None:
        raise _no_labels(src)
    images, labels = contents.images, contents.labels
    keep = list(range(len(images)))  # ids name positions in the file, also for a subset
    if max_images is not None and len(images) > max_images:
        keep = subset_indices(len(images), max_images)
        images = images[keep]
        labels = None if labels is None else labels[keep]
    n = len(images)
    # Only resampling is worth caching: a same-size npz converts as fast as it loads.
    same_size = tuple(images.shape[1:3]) == (resolution, resolution)
    if same_size or resolution > MAX_IN_MEMORY_RESOLUTION:
        cache_root = None
    data = None
    key = ""
    digest = file_sha256(src)  # the content key; also keys the cache
    if cache_root is not None:
        key = cache.cache_key("npz", resolution, [("npz", n, digest)])
        if key != known:  # (a failed ref hit was this very entry)
            data = _from_cache(src, resolution, False, cache_root, key)
    if data is None:
        meta = {
            "ids": [f"npz:{i}" for i in keep],
            "labels": None if labels is None else labels.tolist(),
            "class_names": contents.class_names,
            "skipped": [],
            "notes": [],
            "content": digest,
        }
        data = _store(src, resolution, cache_root, key, npz_to_chw(images, resolution), meta)
    if ref is not None and cache_root is not None:
        cache.write_ref(cache_root, src, resolution, ref, key)
    return data


def _by_ref(
    src: Path, resolution: int, strict: bool, cache_root: Path, max_images: int | None, max_bytes: int | None = None
) -> tuple[str, str | None, ImageData | None]:
    """(stat key, the full key it points to, the cached data) for an unchanged file; a zip's
    listing also depends on the size cap (members over it are left out)."""
    ref = cache.stat_key(src, resolution, max_images, max_bytes)
    known = cache.read_ref(cache_root, src, resolution, ref)
    hit = None if known is None else _from_cache(src, resolution, strict, cache_root, known)
    return ref, known, hit


def _from_cache(
    src: Path, resolution: int, strict: bool, cache_root: Path, key: str, replay_notes: bool = True
) -> ImageData | None:
    """The cached ImageData for ``key``, or ``None`` on a miss (or a corrupt entry)."""
    npy, meta_path = cache.entry_paths(cache_root, src, resolution, key)
    hit = cache.load_entry(npy, meta_path, key, resolution)
    if hit is None:
        return None
    images, meta = hit
    if not isinstance(meta.get("content"), str):  # written before content keys: rebuilt once
        return None
    if src.is_dir() and meta.get("content_version") != cache.FOLDER_CONTENT_VERSION:
        return None  # a folder cached before its bytes were hashed: decoded (and hashed) once more
    log.info("loaded %d images from cache %s", len(images), npy)
    if replay_notes:
        for note in meta.get("notes", []):
            log.warning(note)
    skipped = [(str(i), str(r)) for i, r in meta["skipped"]]
    if strict and skipped:  # the cache remembers files a non-strict load skipped
        raise DataError(f"unreadable image {src}/{skipped[0][0]}: {skipped[0][1]}")
    _warn_skipped(src, skipped)
    return _wrap(src, resolution, images, meta)


def _store(
    src: Path, resolution: int, cache_root: Path | None, key: str, images: np.ndarray, meta: dict[str, Any]
) -> ImageData:
    """Check, cache (when enabled) and wrap freshly decoded images."""
    _check_not_empty(src, len(images), meta["skipped"])  # before saving: never cache nothing
    if cache_root is not None:
        npy, meta_path = cache.entry_paths(cache_root, src, resolution, key)
        full = {"format": cache.READER_VERSION, "key": key, "source": str(src), **meta}
        cache.save_entry(npy, meta_path, images, full)
    _warn_skipped(src, meta["skipped"])
    return _wrap(src, resolution, images, meta)


def _wrap(src: Path, resolution: int, images: np.ndarray, meta: dict[str, Any]) -> ImageData:
    return ImageData(
        images=torch.from_numpy(images),
        labels=_label_tensor(meta["labels"]),
        class_names=meta["class_names"],
        ids=list(meta["ids"]),
        source=str(src),
        resolution=resolution,
        content_key=meta.get("content"),
    )


def _label_tensor(labels: list[int] | None) -> torch.Tensor | None:
    return None if labels is None else torch.tensor(labels, dtype=torch.int64)


def _summary(skipped: list[tuple[str, str]]) -> str:
    names = ", ".join(item_id for item_id, _ in skipped[:3])
    return names + (", ..." if len(skipped) > 3 else "")


def _check_not_empty(src: Path, n: int, skipped: list[tuple[str, str]]) -> None:
    if n == 0:
        # the first one's reason: when all are skipped, they mostly share it (a cap, a format)
        extra = (
            f" ({len(skipped)} unreadable skipped: {_summary(skipped)}; {skipped[0][0]}: {skipped[0][1]})"
            if skipped
            else ""
        )
        raise DataError(f"no images found in {src}{extra}")


def _warn_skipped(src: Path, skipped: list[tuple[str, str]]) -> None:
    if skipped:
        s = "" if len(skipped) == 1 else "s"
        log.warning("skipped %d unreadable image%s in %s: %s", len(skipped), s, src, _summary(skipped))
