"""Small classification metrics shared by the kNN and linear evaluations."""

from __future__ import annotations

import torch
from torch import Tensor

from gensis.errors import GensisError


@torch.no_grad()
def top_k_accuracy(scores: Tensor, labels: Tensor, k: int = 1) -> float:
    """Percentage of rows whose true label is among the ``k`` highest scores.

    ``scores`` is ``(N, C)`` (logits, probabilities or vote totals: only the order matters),
    ``labels`` is ``(N,)`` with values in ``[0, C)``. An empty set scores 0.0.
    """
    if scores.ndim != 2 or labels.ndim != 1 or scores.shape[0] != labels.shape[0]:
        raise GensisError(
            f"top-k accuracy needs scores (N, C) and labels (N,), got {tuple(scores.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if not 1 <= k <= scores.shape[1]:
        raise GensisError(f"top-{k} accuracy needs 1 <= k <= number of classes ({scores.shape[1]})")
    if labels.numel() == 0:
        return 0.0
    top = scores.topk(k, dim=1).indices
    hit = (top == labels.to(top.device).view(-1, 1)).any(dim=1)
    return 100.0 * hit.float().mean().item()
