"""ImageData: what it says it holds, and subsets of unlabelled images.

Each is checked against values worked out by hand; the mutation run (issue 39, benchmarks/mutation.sh)
found these functions reached by no test of the modules that decide results."""

from __future__ import annotations

import torch

from gensis.data.dataset import ImageData


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
