"""ImageData: what it says it holds, and subsets of unlabelled images.

Each is checked against values worked out by hand; the mutation run (issue 39, benchmarks/mutation.sh)
found these functions reached by no test of the modules that decide results."""

from __future__ import annotations

import io
import logging

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
