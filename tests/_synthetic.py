"""Generated labelled images for end-to-end tests: coloured shapes at random places."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLOURS = np.array([[230, 40, 40], [40, 90, 230], [40, 200, 60], [240, 200, 30]], dtype=np.float32)


def shapes_dataset(n: int, size: int = 16, n_classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size, 3) uint8 images and labels: class k is a square of colour k on noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    images = rng.integers(0, 60, size=(n, size, size, 3)).astype(np.float32)
    for i, k in enumerate(labels):
        side = rng.integers(size // 3, size // 2 + 2)
        y, x = rng.integers(0, size - side + 1, size=2)
        images[i, y : y + side, x : x + side] = COLOURS[k] * rng.uniform(0.7, 1.0)
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.int64)


def write_npz(path: Path, n: int, size: int = 16, seed: int = 0) -> Path:
    images, labels = shapes_dataset(n, size=size, seed=seed)
    np.savez(path, images=images, labels=labels)
    return path
