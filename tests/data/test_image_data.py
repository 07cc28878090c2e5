"""ImageData: what it says it holds, what it refuses, its fingerprint's format, and subsets of unlabelled images.

Each is checked against values worked out by hand; the mutation run (issue 39, benchmarks/mutation.sh)
found these functions reached by no test of the modules that decide results."""

from __future__ import annotations

import hashlib
import io
import logging
import re

import pytest
import torch
from PIL import Image

from gensis.data.dataset import ImageData
from gensis.errors import DataError


def test_image_data_says_what_it_holds() -> None:
    data = ImageData(
        torch.zeros(3, 3, 8, 8, dtype=torch.uint8),
        torch.tensor([0, 1, 0]),
        ["a", "b"],
        ["a/1", "b/2", "a/3"],
        "x.zip",
        8,
    )
    assert repr(data) == "ImageData(3 images, 8px, 2 classes, in memory, source='x.zip')"
    lazy = ImageData(None, None, None, ["1"], "d", 16, reader=lambda i: b"")
    assert repr(lazy) == "ImageData(1 images, 16px, unlabelled, lazy, source='d')"


def test_a_subset_of_unlabelled_images_stays_unlabelled() -> None:
    """subset() of images without labels keeps no labels (in memory or lazy), the ids in the order asked."""
    images = torch.arange(3, dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 3, 2, 2).contiguous()
    sub = ImageData(images, None, None, ["a", "b", "c"], "x.npz", 2).subset([2, 0])
    assert sub.labels is None and sub.ids == ["c", "a"] and sub.images[:, 0, 0, 0].tolist() == [2, 0]
    lazy = ImageData(None, None, None, ["a", "b", "c"], "d", 2, reader=lambda i: b"").subset([1])
    assert lazy.labels is None and lazy.images is None and lazy.ids == ["b"]


class _Reader:
    """A lazy source with one good PNG, one file gone since the listing and one that is not an image."""

    def read(self, item_id: str) -> bytes:
        if item_id == "gone.png":
            raise OSError("boom")
        if item_id == "bad.png":
            return b"not an image"
        buf = io.BytesIO()
        Image.new("RGB", (4, 4), (200, 100, 50)).save(buf, format="PNG")
        return buf.getvalue()

    def display(self, item_id: str) -> str:
        return f"root/{item_id}"


def test_an_unreadable_lazy_image_is_named_when_strict_and_otherwise_black_with_one_warning(caplog) -> None:
    """Lazy mode: strict names the image and the reason (the read's own error after "cannot read: ");
    otherwise the image is black uint8 and the warning, naming it and the reason, comes once per image."""
    ids = ["ok.png", "gone.png", "bad.png"]
    strict = ImageData(None, None, None, ids, "mem-strict", 4, reader=_Reader(), strict=True)
    assert strict.batch([0])[0, :, 0, 0].tolist() == [200, 100, 50]
    with pytest.raises(DataError) as refused:
        strict.batch([1])
    assert str(refused.value) == "unreadable image root/gone.png: cannot read: boom"
    with pytest.raises(DataError, match=r"^unreadable image root/bad.png: \S"):
        strict.batch([2])

    lenient = ImageData(None, None, None, ids, "mem-lenient", 4, reader=_Reader())
    with caplog.at_level(logging.WARNING, logger="gensis"):
        first, again = lenient.batch([1, 0]), lenient.batch([1])
    assert first.dtype == torch.uint8 and first[0].sum() == 0 and again.sum() == 0 and first[1].sum() > 0
    warned = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert warned == ["unreadable image root/gone.png (cannot read: boom); using a black image instead"]


def test_indices_must_be_integers_or_a_mask() -> None:
    """batch() and subset() take integer indices or a boolean mask; a float or complex index is refused
    (not truncated to an integer), naming its dtype."""
    data = ImageData(
        torch.arange(3, dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 3, 1, 1), None, None, ["a", "b", "c"], "m", 1
    )
    assert data.batch(torch.tensor([2, 0]))[:, 0, 0, 0].tolist() == [2, 0]
    assert data.subset(torch.tensor([False, True, True])).ids == ["b", "c"]
    for bad, dtype in ((torch.tensor([1.0]), "torch.float32"), (torch.tensor([1 + 0j]), "torch.complex64")):
        for take in (data.batch, data.subset):
            with pytest.raises(TypeError) as refused:
                take(bad)
            assert str(refused.value) == f"indices must be integers, got {dtype}"


def test_image_data_refuses_what_it_cannot_hold_naming_it() -> None:
    """Neither pixels nor a reader; pixels of another dtype or shape (either alone is enough); labels of
    another length."""
    ids = ["a", "b"]
    cases = (
        (dict(images=None), "ImageData needs images in memory or a reader for lazy decoding"),
        (
            dict(images=torch.zeros(2, 3, 4, 4, dtype=torch.float32)),
            "images must be uint8 (2, 3, 4, 4), got torch.float32 (2, 3, 4, 4)",
        ),
        (
            dict(images=torch.zeros(2, 3, 4, 5, dtype=torch.uint8)),
            "images must be uint8 (2, 3, 4, 4), got torch.uint8 (2, 3, 4, 5)",
        ),
        (
            dict(images=torch.zeros(2, 3, 4, 4, dtype=torch.uint8), labels=torch.zeros(3, dtype=torch.int64)),
            "labels must have shape (2,), got (3,)",
        ),
    )
    for fields, message in cases:
        kwargs = dict(images=None, labels=None, class_names=None, ids=ids, source="m", resolution=4) | fields
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            ImageData(**kwargs)


def test_the_fingerprint_of_images_in_memory_is_sha256_of_ids_labels_and_pixels() -> None:
    """The format a checkpoint and a bank record (a change would refuse every earlier run's resume):
    sha256 of b"gensis-data v1\\n", the ids as JSON, the labels as JSON (when labelled), then the
    content key, or, with none, the pixel bytes in (N, 3, R, R) order."""
    images = torch.arange(2 * 3 * 2 * 2, dtype=torch.uint8).view(2, 3, 2, 2)
    labelled = ImageData(images, torch.tensor([1, 0]), ["x", "y"], ["p/1", "q/2"], "m", 2)
    unlabelled = ImageData(images, None, None, ["p/1", "q/2"], "m", 2)
    keyed = ImageData(images, None, None, ["p/1", "q/2"], "m", 2, content_key="k1")
    head = b'gensis-data v1\n["p/1", "q/2"]'
    assert labelled.fingerprint() == hashlib.sha256(head + b"[1, 0]" + bytes(range(24))).hexdigest()
    assert unlabelled.fingerprint() == hashlib.sha256(head + bytes(range(24))).hexdigest()
    assert keyed.fingerprint() == hashlib.sha256(head + b"k1").hexdigest()
    lazy = ImageData(None, None, None, ["p/1", "q/2"], "d", 2, reader=lambda i: b"")
    assert lazy.fingerprint() == hashlib.sha256(head).hexdigest()
