"""The data fingerprint follows content: a folder whose pixels changed at the same names and
sizes is other data (a bank of it, a checkpoint of it are refused); a plain copy is the same."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gensis
from gensis.data import cache, load_images
from gensis.errors import CheckpointError


def _folder(root: Path, seed: int, n: int = 40, size: int = 16) -> Path:
    """BMP files: the same byte size whatever the pixels, so only content can tell two apart."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        cls = root / f"c{i % 2}"
        cls.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(cls / f"{i:03d}.bmp")
    return root


@pytest.mark.parametrize("resolution, cache_dir", [(16, None), (16, "cache"), (128, None)])  # in memory, cached, lazy
def test_same_names_and_sizes_other_pixels_is_other_data(tmp_path, resolution, cache_dir) -> None:
    a, b = _folder(tmp_path / "a", seed=0), _folder(tmp_path / "b", seed=1)
    sizes = lambda r: sorted((p.relative_to(r).as_posix(), p.stat().st_size) for p in r.rglob("*.bmp"))  # noqa: E731
    assert sizes(a) == sizes(b)
    cache_root = None if cache_dir is None else str(tmp_path / cache_dir)
    fa = load_images(a, resolution, cache_dir=cache_root, progress=False).fingerprint()
    fb = load_images(b, resolution, cache_dir=cache_root, progress=False).fingerprint()
    assert fa != fb
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)  # new mtimes, same bytes
    os.utime(copy / "c0" / "000.bmp", (1, 1))
    assert load_images(copy, resolution, cache_dir=cache_root, progress=False).fingerprint() == fa
    again = load_images(a, resolution, cache_dir=cache_root, progress=False).fingerprint()  # a cache hit when cached
    assert again == fa


def test_copied_folder_is_the_same_data(tmp_path) -> None:
    a = _folder(tmp_path / "a", seed=0)
    shutil.copytree(a, tmp_path / "copy")
    assert (
        load_images(a, 16, cache_dir=None, progress=False).fingerprint()
        == load_images(tmp_path / "copy", 16, cache_dir=None, progress=False).fingerprint()
    )


def test_a_folder_cached_before_content_hashing_is_decoded_once_more(tmp_path) -> None:
    a = _folder(tmp_path / "a", seed=0)
    first = load_images(a, 16, cache_dir=tmp_path / "cache", progress=False).fingerprint()
    metas = list((tmp_path / "cache").rglob("*.json"))
    assert metas
    for meta_path in metas:  # as an older gensis wrote it: no content_version, a name-and-size key
        meta = json.loads(meta_path.read_text())
        if meta.pop("content_version", None) is not None:
            meta["content"] = cache.content_key("zip", meta["ids"], [0] * len(meta["ids"]), [""] * len(meta["ids"]))
            meta_path.write_text(json.dumps(meta))
    assert load_images(a, 16, cache_dir=tmp_path / "cache", progress=False).fingerprint() == first


def test_resume_after_every_image_was_swapped_is_refused(tmp_path) -> None:
    data = _folder(tmp_path / "data", seed=0, n=48)
    settings = {
        "preset": "digits",
        "data.path": str(data),
        "data.resolution": 16,
        "data.cache_dir": None,
        "model.backbone": "resnet10t",
        "dino.out_dim": 32,
        "dino.hidden_dim": 32,
        "dino.bottleneck_dim": 16,
        "train.batch_size": 16,
        "train.epochs": 2,
        "train.knn_every": 0,
        "train.progress": False,
        "out": str(tmp_path / "run"),
    }
    gensis.pretrain({**settings, "train.max_steps": 3})
    shutil.rmtree(data)
    _folder(tmp_path / "data", seed=5, n=48)  # same names and sizes, other pixels
    with pytest.raises(CheckpointError, match="other data"):
        gensis.pretrain(settings, resume=True)
