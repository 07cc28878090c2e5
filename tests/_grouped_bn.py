"""Per-process BatchNorm in one process: what W CPU processes compute, for the equivalence tests.

On the CPU PyTorch has no SyncBatchNorm, so under W processes each BatchNorm normalizes only
its rank's rows, and rank r keeps the contiguous rows ``[r B/W, (r+1) B/W)`` of the global
batch. ``grouped_batch_norm(W)`` makes every training-mode BatchNorm of one process do the
same: it normalizes each of W contiguous row blocks by that block's own mean and variance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F


@contextlib.contextmanager
def grouped_batch_norm(groups: int) -> Iterator[dict[str, int]]:
    """Inside the block, ``nn.BatchNorm*d`` in training mode use per-block statistics.

    Yields a counter of the grouped calls, so that a test can check the patch was used.
    """
    plain = F.batch_norm
    calls = {"grouped": 0}

    def grouped(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
        if not training:
            return plain(input, running_mean, running_var, weight, bias, training, momentum, eps)
        if input.shape[0] % groups:
            raise AssertionError(f"a BatchNorm batch of {input.shape[0]} rows does not split into {groups} processes")
        calls["grouped"] += 1
        return torch.cat(
            [plain(x, running_mean, running_var, weight, bias, training, momentum, eps) for x in input.chunk(groups)]
        )

    F.batch_norm = grouped  # nn.BatchNorm*d look F.batch_norm up at call time
    try:
        yield calls
    finally:
        F.batch_norm = plain
