"""Decode many images into one uint8 array, in worker processes when that pays off.

JPEG decoding of small images is dominated by Python-level work that holds the GIL, so
threads do not help (measured: 2 threads = 1 thread on CIFAR-10); processes do. Each worker
opens the source once (its own zip handle) and decodes contiguous chunks of ids. Small jobs
(or ``num_workers <= 1``) run in the calling process, which avoids the start-up cost and
keeps the decoder patchable in tests.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from tqdm.auto import tqdm

from gensis.errors import DataError

from . import decode
from .sources import ItemReader

# Below this many images a process pool costs more than it saves.
MIN_ITEMS_FOR_POOL = 1024

_worker_reader: ItemReader | None = None


def decode_many(
    reader: ItemReader,
    ids: list[str],
    resolution: int,
    *,
    strict: bool = False,
    num_workers: int = 2,
    progress: bool = True,
    desc: str = "decoding",
    digests: list[str] | None = None,
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Decode ``ids`` to a (K, 3, R, R) uint8 array of the readable ones, in id order.

    Returns the array and the ``(id, reason)`` pairs that were skipped. With ``strict`` the
    first unreadable image (in id order) raises :class:`DataError` instead. ``digests``, if
    given, receives the sha256 of every item's bytes in id order ("" when unreadable): the
    data's content fingerprint, at the cost of hashing what is read anyway.
    """
    n = len(ids)
    out = np.empty((n, 3, resolution, resolution), dtype=np.uint8)
    bad: list[tuple[int, str]] = []
    workers = min(num_workers, os.cpu_count() or 1)
    hashes = [""] * n if digests is not None else None
    with tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        if workers <= 1 or n < MIN_ITEMS_FOR_POOL:
            bad = _decode_range(reader.read, ids, 0, resolution, strict, out, bar.update, hashes)
        else:
            bad = _decode_in_pool(reader, ids, resolution, strict, workers, out, bar.update, hashes)
    if digests is not None:
        assert hashes is not None  # made above whenever digests is given
        digests[:] = hashes
    if bad and strict:
        i, reason = bad[0]
        raise DataError(f"unreadable image {reader.display(ids[i])}: {reason}")
    if bad:
        keep = np.ones(n, dtype=bool)
        keep[[i for i, _ in bad]] = False
        out = out[keep]
    return out, [(ids[i], reason) for i, reason in bad]


def _decode_range(
    read: Callable[[str], bytes],
    ids: list[str],
    start: int,
    resolution: int,
    strict: bool,
    out: np.ndarray,
    update: Callable[[int], object] | None = None,
    hashes: list[str] | None = None,
) -> list[tuple[int, str]]:
    """Decode ``ids`` into ``out[0:len(ids)]`` (and their bytes' sha256 into ``hashes[0:len(ids)]``);
    return (start + offset, reason) of failures."""
    bad: list[tuple[int, str]] = []
    reported = 0
    for k, item_id in enumerate(ids):
        try:
            try:
                data = read(item_id)
            except Exception as err:  # noqa: BLE001 - bad CRC, permissions, encrypted member...
                raise decode.UnreadableImage(decode.one_line(f"cannot read: {err}")) from None
            if hashes is not None:
                hashes[k] = hashlib.sha256(data).hexdigest()
            # looked up on the module at call time so tests can patch the decoder
            out[k] = decode.decode_image(data, resolution)
        except decode.UnreadableImage as err:
            bad.append((start + k, str(err)))
            if strict:
                break
        if update is not None and k + 1 - reported >= 256:
            update(k + 1 - reported)
            reported = k + 1
    if update is not None and len(ids) > reported:
        update(len(ids) - reported)
    return bad


def _decode_in_pool(
    reader: ItemReader,
    ids: list[str],
    resolution: int,
    strict: bool,
    workers: int,
    out: np.ndarray,
    update: Callable[[int], object],
    hashes: list[str] | None = None,
) -> list[tuple[int, str]]:
    n = len(ids)
    chunk = max(256, min(2048, math.ceil(n / (workers * 8))))
    starts = range(0, n, chunk)
    bad: list[tuple[int, str]] = []
    pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(reader,))
    try:
        futures = [
            pool.submit(_decode_chunk, ids[s : s + chunk], s, resolution, strict, hashes is not None) for s in starts
        ]
        for s, fut in zip(starts, futures, strict=True):  # in order, so "first bad" is the lowest id
            arr, chunk_bad, chunk_hashes = fut.result()
            out[s : s + len(arr)] = arr
            if hashes is not None:
                hashes[s : s + len(chunk_hashes)] = chunk_hashes
            update(len(arr))
            bad.extend(chunk_bad)
            if strict and chunk_bad:
                break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return bad


def _init_worker(reader: ItemReader) -> None:
    global _worker_reader
    _worker_reader = reader


def _decode_chunk(
    ids: list[str], start: int, resolution: int, strict: bool, hash_bytes: bool = False
) -> tuple[np.ndarray, list[tuple[int, str]], list[str]]:
    assert _worker_reader is not None, "worker not initialised"
    out = np.empty((len(ids), 3, resolution, resolution), dtype=np.uint8)
    hashes = [""] * len(ids) if hash_bytes else None
    bad = _decode_range(_worker_reader.read, ids, start, resolution, strict, out, hashes=hashes)
    return out, bad, hashes or []
