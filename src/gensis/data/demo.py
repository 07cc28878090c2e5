"""The demo dataset: scikit-learn's bundled UCI handwritten digits, no download needed.

1,797 real 8x8 grayscale scans (16 grey levels) of the digits 0-9, shipped inside the
scikit-learn wheel (``sklearn.datasets.load_digits``). Values 0..16 become 0..255, the
images are upsampled to the requested resolution and repeated to RGB.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gensis.errors import DataError

from .dataset import ImageData

DEMO_TEST_SIZE = 360  # -> 1,437 train / 360 test
DEMO_SEED = 0
DEMO_SOURCE = "sklearn.datasets.load_digits"


def demo_digits(resolution: int = 32) -> tuple[ImageData, ImageData]:
    """Return ``(train, test)``: 1,437 and 360 labelled digit images at ``resolution``.

    The split is stratified by class and fixed (seed 0, largest-remainder allocation of the
    360 test images over the classes, a seeded permutation inside each class), so it is the
    same on every run. Ids are ``digits:<index>`` into ``load_digits()`` order, ascending.
    Upsampling is bicubic (antialiased when shrinking), rounded and clamped to 0..255.
    Not cached: building the set takes milliseconds, less than reading a cache entry would.
    """
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the demo dataset needs scikit-learn: pip install 'gensis[demo]'") from None
    bunch = load_digits()
    pixels = np.asarray(bunch.images, dtype=np.float32)  # (1797, 8, 8), values 0..16
    labels = np.asarray(bunch.target, dtype=np.int64)

    x = torch.from_numpy(pixels * (255.0 / 16.0)).unsqueeze(1)  # (N, 1, 8, 8)
    if resolution != x.shape[-1]:
        x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False, antialias=True)
    images = x.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()

    train_idx, test_idx = stratified_split(labels, DEMO_TEST_SIZE, DEMO_SEED)
    class_names = [str(c) for c in range(10)]
    return (
        _part(images, labels, train_idx, class_names, resolution),
        _part(images, labels, test_idx, class_names, resolution),
    )


def stratified_split(labels: np.ndarray, test_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices with ``test_size`` test items spread by class share."""
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * test_size / len(labels)
    per_class = np.floor(exact).astype(int)
    # hand the rounding leftovers to the largest fractional parts (ties: lower class first)
    order = sorted(range(len(classes)), key=lambda k: (-(exact[k] - per_class[k]), k))
    for k in order[: test_size - int(per_class.sum())]:
        per_class[k] += 1
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    for c, t in zip(classes, per_class, strict=True):
        members = np.flatnonzero(labels == c)
        test.append(rng.permutation(members)[:t])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


def _part(
    images: torch.Tensor, labels: np.ndarray, idx: np.ndarray, class_names: list[str], resolution: int
) -> ImageData:
    t = torch.from_numpy(idx)
    return ImageData(
        images=images[t].contiguous(),
        labels=torch.from_numpy(labels[idx]),
        class_names=class_names,
        ids=[f"digits:{i}" for i in idx.tolist()],
        source=DEMO_SOURCE,
        resolution=resolution,
    )
