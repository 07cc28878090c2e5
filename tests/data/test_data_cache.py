"""Tests for gensis.data: the content-keyed cache, lazy mode, ImageData batches and the decode pool."""

from __future__ import annotations

import json
import logging
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _data_files import encode, put, solid, warnings_of, with_bad_files, write_zip
from PIL import Image

from gensis.data import decode as decode_mod
from gensis.data import load_images
from gensis.data.parallel import MIN_ITEMS_FOR_POOL, decode_many
from gensis.data.sources import ItemReader, list_folder
from gensis.errors import DataError

# ---------------------------------------------------------------- cache


def test_cache_hit_skips_decoding(labelled: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gensis.data")
    cache = tmp_path / "cache"
    first = load_images(labelled, 8, cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.npy"))) == 1 and len(list(cache.glob("*.json"))) == 1
    assert not list(cache.glob(".*"))  # no temp files left behind

    def boom(data: bytes, resolution: int) -> np.ndarray:
        raise AssertionError("decoder called on a cache hit")

    monkeypatch.setattr(decode_mod, "decode_image", boom)
    second = load_images(labelled, 8, cache_dir=cache, progress=False)
    assert torch.equal(first.images, second.images) and second.ids == first.ids
    assert torch.equal(first.labels, second.labels) and second.class_names == first.class_names
    assert any(r.getMessage().startswith("loaded 4 images from cache ") for r in caplog.records)
    second.images[0] = 0  # the tensor is writable (not a read-only mmap)

    # a changed file changes the key: decoded again (and the patched decoder is hit)
    (labelled / "dog" / "b.png").write_bytes(solid((7, 7, 7)))
    os.utime(labelled / "dog" / "b.png", ns=(1, 1))
    with pytest.raises(AssertionError, match="decoder called"):
        load_images(labelled, 8, cache_dir=cache, progress=False)


def test_corrupt_cache_is_rebuilt(labelled: Path, tmp_path: Path, caplog) -> None:
    cache = tmp_path / "cache"
    first = load_images(labelled, 8, cache_dir=cache, progress=False)
    (npy,) = cache.glob("*.npy")
    npy.write_bytes(b"\x93NUMPY garbage")
    second = load_images(labelled, 8, cache_dir=cache, progress=False)
    assert torch.equal(first.images, second.images)
    (msg,) = warnings_of(caplog)
    assert "corrupt cache" in msg and "rebuilding" in msg
    (meta,) = cache.glob("*.json")
    meta.write_text("{not json")
    third = load_images(labelled, 8, cache_dir=cache, progress=False)
    assert torch.equal(first.images, third.images) and len(warnings_of(caplog)) == 2
    assert json.loads(meta.read_text())["ids"] == first.ids  # rewritten


def test_corrupt_zip_cache_warns_once(tmp_path: Path, caplog) -> None:
    path = tmp_path / "s.zip"
    write_zip(path, {"a/x.png": solid((1, 1, 1)), "b/y.png": solid((2, 2, 2))})
    kw = dict(cache_dir=tmp_path / "cache", progress=False)
    load_images(path, 8, **kw)
    (npy,) = (tmp_path / "cache").glob("*.npy")
    npy.write_bytes(npy.read_bytes()[:100])  # truncated pixel data
    again = load_images(path, 8, **kw)
    assert again.images[1, :, 0, 0].tolist() == [2, 2, 2]
    (msg,) = warnings_of(caplog)
    assert "corrupt cache" in msg
    assert torch.equal(load_images(path, 8, **kw).images, again.images)  # rebuilt entry hits
    assert len(warnings_of(caplog)) == 1


def test_cache_remembers_skipped_files(tmp_path: Path, caplog) -> None:
    with_bad_files(tmp_path / "bad")
    kw = dict(cache_dir=tmp_path / "cache", progress=False)
    load_images(tmp_path / "bad", 8, **kw)
    again = load_images(tmp_path / "bad", 8, **kw)
    assert len(again) == 2 and len(warnings_of(caplog)) == 2  # one warning per load
    with pytest.raises(DataError, match="a/empty.png: empty file"):
        load_images(tmp_path / "bad", 8, strict=True, **kw)


def test_zip_cache_ref_skips_listing(tmp_path: Path, monkeypatch, caplog) -> None:
    from gensis.data import loader

    path = tmp_path / "one.zip"
    write_zip(path, {"only/a.png": solid((1, 2, 3)), "only/b.png": solid((4, 5, 6))})
    kw = dict(cache_dir=tmp_path / "cache", progress=False)
    first = load_images(path, 8, **kw)
    assert len(list((tmp_path / "cache").glob("*.ref"))) == 1
    assert len(warnings_of(caplog)) == 1  # a single class folder is worth a warning

    def no_listing(*args, **kwargs):
        raise AssertionError("listed an unchanged zip")

    monkeypatch.setattr(loader, "list_zip", no_listing)
    second = load_images(path, 8, **kw)
    assert torch.equal(first.images, second.images) and second.ids == first.ids
    assert len(warnings_of(caplog)) == 2  # the layout warning is replayed from the cache
    monkeypatch.undo()

    # a rewritten archive must be listed again, even with the same size and mtime
    stat = path.stat()
    write_zip(path, {"only/a.png": solid((9, 9, 9)), "only/b.png": solid((4, 5, 6))})
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    third = load_images(path, 8, **kw)
    assert third.images[0, :, 0, 0].tolist() == [9, 9, 9]


def test_npz_cache(tmp_path: Path, monkeypatch) -> None:
    from gensis.data import loader

    gray = np.arange(2 * 6 * 6, dtype=np.uint8).reshape(2, 6, 6)
    np.savez(tmp_path / "g.npz", images=gray, labels=np.array([0, 1]))
    kw = dict(cache_dir=tmp_path / "cache")
    load_images(tmp_path / "g.npz", 6, **kw)  # same size: nothing to cache
    assert not (tmp_path / "cache").exists()
    first = load_images(tmp_path / "g.npz", 12, **kw)  # resampled: cached
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1

    def no_read(path):
        raise AssertionError("read an unchanged npz")

    monkeypatch.setattr(loader, "read_npz", no_read)
    second = load_images(tmp_path / "g.npz", 12, require_labels=True, **kw)
    assert torch.equal(first.images, second.images) and second.labels.tolist() == [0, 1]


def test_auto_cache_dir_and_no_cache(labelled: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENSIS_CACHE_DIR", str(tmp_path / "auto"))
    load_images(labelled, 8, progress=False)
    assert len(list((tmp_path / "auto").glob("*.npy"))) == 1
    monkeypatch.setenv("GENSIS_CACHE_DIR", str(tmp_path / "other"))
    load_images(labelled, 8, cache_dir=None, progress=False)
    load_images(labelled, 128, progress=False)  # lazy: never cached
    assert not (tmp_path / "other").exists()


# ---------------------------------------------------------------- lazy mode


def test_lazy_mode(labelled: Path, tmp_path: Path) -> None:
    data = load_images(labelled, 128, progress=False)
    assert not data.in_memory and data.images is None and len(data) == 4
    batch = data.batch(torch.tensor([2, 0]))
    assert batch.shape == (2, 3, 128, 128) and batch.dtype == torch.uint8
    assert batch[0, :, 64, 64].tolist() == [0, 255, 0]  # dog/a.PNG
    sub = data.subset([3, 2])
    assert sub.ids == ["dog/b.png", "dog/a.PNG"] and sub.labels.tolist() == [1, 1]
    assert torch.equal(sub.batch([1]), data.batch([2]))

    loader = torch.utils.data.DataLoader(data.as_dataset(), batch_size=3, num_workers=0)
    images, index = next(iter(loader))
    assert images.shape == (3, 3, 128, 128) and index.tolist() == [0, 1, 2]
    clone = pickle.loads(pickle.dumps(data.as_dataset()))
    assert torch.equal(clone[1][0], data.batch([1])[0])


def test_lazy_zip_and_bad_files(tmp_path: Path, caplog) -> None:
    with_bad_files(tmp_path / "bad")
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted((tmp_path / "bad").rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(tmp_path / "bad").as_posix())
    data = load_images(path, 100, progress=False)
    # only the zero-byte file is known bad without decoding
    assert "a/empty.png" not in data.ids and len(data) == 5
    assert warnings_of(caplog) == [f"skipped 1 unreadable image in {path}: a/empty.png"]
    text = data.ids.index("a/text.jpg")
    assert data.batch([text]).max() == 0  # unreadable -> black image and a warning
    assert "a/text.jpg" in warnings_of(caplog)[-1]
    good = pickle.loads(pickle.dumps(data)).batch([data.ids.index("b/good.jpg")])
    assert abs(int(good[0, 1, 50, 50]) - 200) <= 3
    # strict above 96 px decodes every file at load: the truncated one is named there, not mid-training
    with pytest.raises(DataError, match=r"b/trunc\.jpg: .*runcated"):
        load_images(tmp_path / "bad" / "b", 100, strict=True, progress=False)
    for name in ("trunc.jpg", "trunc2.png"):
        (tmp_path / "bad" / "b" / name).unlink()
    strict = load_images(tmp_path / "bad" / "b", 100, strict=True, progress=False)
    assert strict.batch([0]).shape == (1, 3, 100, 100)  # good.jpg


# ---------------------------------------------------------------- ImageData and workers


def test_in_memory_batch_and_subset(labelled: Path) -> None:
    data = load_images(labelled, 8, cache_dir=None, progress=False)
    assert torch.equal(data.batch([1, 3]), data.images[[1, 3]])
    mask = torch.tensor([True, False, False, True])
    sub = data.subset(mask)
    assert sub.ids == ["cat/sub/deep.jpg", "dog/b.png"] and sub.labels.tolist() == [0, 1]
    assert data.batch([]).shape == (0, 3, 8, 8)
    x, i = data.as_dataset()[2]
    assert i == 2 and torch.equal(x, data.images[2])


def test_process_pool_matches_serial(tmp_path: Path) -> None:
    root = tmp_path / "many"
    rng = np.random.default_rng(0)
    n = MIN_ITEMS_FOR_POOL + 20
    for i in range(n):
        pixels = rng.integers(0, 256, (4, 4, 3), np.uint8)
        put(root, f"{i:05d}.png", encode(Image.fromarray(pixels)))
    put(root, "00007.png", b"broken")
    reader = ItemReader("folder", root)
    ids = list_folder(root).ids
    pooled, bad = decode_many(reader, ids, 4, num_workers=2, progress=False)
    serial, bad0 = decode_many(reader, ids, 4, num_workers=0, progress=False)
    assert np.array_equal(pooled, serial) and pooled.shape == (n - 1, 3, 4, 4)
    assert bad == bad0 and [b[0] for b in bad] == ["00007.png"]
    with pytest.raises(DataError, match="00007.png"):
        decode_many(reader, ids, 4, num_workers=2, progress=False, strict=True)
