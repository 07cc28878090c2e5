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
            f"top-k accuracy needs scores (N, C) and labels (N,), got {tuple(scores.shape)} and {tuple(labels.shape)}"
        )
    if not 1 <= k <= scores.shape[1]:
        raise GensisError(f"top-{k} accuracy needs 1 <= k <= number of classes ({scores.shape[1]})")
    if labels.numel() == 0:
        return 0.0
    top = scores.topk(k, dim=1).indices
    hit = (top == labels.to(top.device).view(-1, 1)).any(dim=1)
    return 100.0 * hit.float().mean().item()


@torch.no_grad()
def binary_auc(positive_scores: Tensor, labels: Tensor) -> float:
    """ROC AUC in percent: the chance that a random positive outranks a random negative.

    The Mann-Whitney form with average ranks, so ties count one half; ``labels`` are 0/1.
    """
    s = positive_scores.detach().double().cpu().flatten()
    y = labels.detach().cpu().flatten().bool()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if s.shape != y.shape or n_pos == 0 or n_neg == 0:
        raise GensisError(f"AUC needs one score per label and both classes, got {n_pos} positives, {n_neg} negatives")
    order = s.argsort()
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(1, len(s) + 1, dtype=torch.float64)
    values, inverse, counts = s.unique(return_inverse=True, return_counts=True)
    first = torch.zeros_like(values).scatter_reduce(0, inverse, ranks, "amin", include_self=False)
    ranks = (first + (counts.double() - 1) / 2)[inverse]  # average rank within each tie
    u = ranks[y].sum().item() - n_pos * (n_pos + 1) / 2
    return 100.0 * u / (n_pos * n_neg)


@torch.no_grad()
def binary_f1(predictions: Tensor, labels: Tensor) -> float:
    """F1 of the positive class (label 1) in percent; 0 when nothing is predicted positive."""
    p = predictions.detach().cpu().flatten() == 1
    y = labels.detach().cpu().flatten() == 1
    tp = (p & y).sum().item()
    denom = p.sum().item() + y.sum().item()
    return 100.0 * 2 * tp / denom if denom else 0.0
