"""Batches of uint8 images for the training loop, in a seeded order.

Small datasets live in memory (on the GPU when there is one), so a batch is one indexing
operation and augmentation runs on the device. Large images are decoded by DataLoader
workers. The order of epoch ``e`` depends only on ``(seed, e)``, so a resumed run sees
exactly the batches the interrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from gensis.data.dataset import ImageData


def epoch_batches(n_images: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n_images, generator=g)
    n_batches = n_images // batch_size  # drop_last: every step has the same batch size
    return [perm[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]


def iterate_batches(
    data: ImageData, batches: list[torch.Tensor], device: torch.device, num_workers: int, resident: torch.Tensor | None
) -> Iterator[torch.Tensor]:
    """Yield uint8 (B, 3, R, R) batches on ``device`` for the given index lists."""
    if resident is not None:
        for idx in batches:
            yield resident[idx.to(resident.device)]
        return
    loader = DataLoader(
        data.as_dataset(),
        batch_sampler=[b.tolist() for b in batches],
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    for images, _ in loader:
        yield images.to(device, non_blocking=True)


def step_generator(seed: int, step: int) -> torch.Generator:
    """Augmentation randomness of one step: a function of (seed, step) only."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63 - 1))
