"""Weighted k-nearest-neighbour evaluation of frozen features.

This is the non-parametric classifier of Wu et al. 2018 ("Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", Sec. 3.4) in the form DINO uses it (Caron et al.
2021, Sec. 4.1 and ``eval_knn.py``): features are L2-normalised, the ``k`` training features
with the highest cosine similarity to a test feature each vote for their class with weight
``exp(sim / T)``, and the class with the largest summed vote is predicted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gensis.errors import GensisError

log = logging.getLogger("gensis.eval")


def _check_inputs(train_features: Tensor, train_labels: Tensor, test_features: Tensor) -> None:
    if train_features.ndim != 2 or test_features.ndim != 2:
        raise GensisError(
            f"kNN needs 2-D features (N, D), got train {tuple(train_features.shape)} "
            f"and test {tuple(test_features.shape)}"
        )
    if train_features.shape[1] != test_features.shape[1]:
        raise GensisError(
            f"kNN train and test features differ in dimension: {train_features.shape[1]} vs {test_features.shape[1]}"
        )
    if train_labels.ndim != 1 or train_labels.shape[0] != train_features.shape[0]:
        raise GensisError(
            f"kNN needs one label per train feature, got {tuple(train_labels.shape)} labels "
            f"for {train_features.shape[0]} features"
        )
    if train_features.shape[0] == 0:
        raise GensisError("kNN needs at least one training feature")


def _as_k_list(k: int | Sequence[int]) -> list[int]:
    ks = [int(k)] if isinstance(k, int) else [int(v) for v in k]
    if not ks or min(ks) < 1:
        raise GensisError(f"kNN k must be a positive integer or a list of them, got {k!r}")
    return sorted(set(ks))


# long: DINO's weighted vote in chunks; the docstring gives the formula
@torch.no_grad()
def knn_predict(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    *,
    k: int | Sequence[int] = (20, 200),
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> dict[int, Tensor]:
    """Predict test labels by temperature-weighted kNN voting (Wu et al. 2018; DINO).

    Args:
        train_features: ``(N_train, D)`` memory bank; any float dtype, any device.
        train_labels: ``(N_train,)`` integer labels in ``[0, num_classes)``.
        test_features: ``(N_test, D)``; moved chunk by chunk to the train features' device.
        k: one or several neighbour counts. A single top-k search at ``max(k)`` serves all of
            them (the top-``k`` of a sorted top-``max(k)`` list is a prefix). A ``k`` larger
            than the train set is clipped to it; the result is still keyed by the requested k.
        temperature: ``T`` in the vote weight ``exp(cos_sim / T)``; DINO uses 0.07.
        num_classes: defaults to ``max(train_labels) + 1``.
        chunk_size: test rows per similarity block, so that e.g. 10,000 x 50,000 needs only a
            ``chunk_size x N_train`` similarity matrix at a time.

    Returns:
        ``{k: predictions}`` with ``(N_test,)`` int64 tensors on the train features' device.
        Ties between classes go to the lowest class index (``argmax``), so results are
        deterministic.

    The caller's tensors are not modified: normalisation makes new float32 tensors (float32
    also keeps ``exp(1 / 0.07) ~ 1.6e6`` finite where fp16 features would overflow).
    """
    _check_inputs(train_features, train_labels, test_features)
    ks = _as_k_list(k)
    if temperature <= 0:
        raise GensisError(f"kNN temperature must be > 0, got {temperature}")
    if chunk_size < 1:
        raise GensisError(f"kNN chunk_size must be >= 1, got {chunk_size}")

    device = train_features.device
    labels = train_labels.to(device=device, dtype=torch.long)
    if labels.min().item() < 0:
        raise GensisError("kNN labels must be >= 0")
    n_classes = int(labels.max().item()) + 1 if num_classes is None else int(num_classes)
    if labels.max().item() >= n_classes:
        raise GensisError(f"kNN num_classes={n_classes} but the train labels go up to {labels.max().item()}")

    train = F.normalize(train_features.float(), dim=1)  # new tensor: caller's stays as is
    k_max = min(ks[-1], train.shape[0])
    preds: dict[int, list[Tensor]] = {kk: [] for kk in ks}
    for start in range(0, test_features.shape[0], chunk_size):
        chunk = test_features[start : start + chunk_size].to(device=device, dtype=torch.float32)
        chunk = F.normalize(chunk, dim=1)
        sims, idx = (chunk @ train.T).topk(k_max, dim=1)  # sorted, most similar first
        weights = (sims / temperature).exp()
        neighbour_labels = labels[idx]
        for kk in ks:
            kc = min(kk, k_max)
            votes = torch.zeros(chunk.shape[0], n_classes, device=device)
            votes.scatter_add_(1, neighbour_labels[:, :kc], weights[:, :kc])
            preds[kk].append(votes.argmax(dim=1))
    empty = torch.empty(0, dtype=torch.long, device=device)
    return {kk: torch.cat(p) if p else empty for kk, p in preds.items()}


@torch.no_grad()
def knn_accuracy(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    *,
    k: int | Sequence[int] = (20, 200),
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
    correct: dict[int, Tensor] | None = None,
) -> dict[int, float]:
    """Top-1 accuracy in percent of :func:`knn_predict` for every ``k``.

    Test labels may include classes absent from the train set; those rows simply count as
    errors. An empty test set scores 0.0. ``correct``, if given, receives each ``k``'s
    per-image correctness (bool, on the CPU): what a paired test of two encoders needs.
    """
    if test_labels.ndim != 1 or test_labels.shape[0] != test_features.shape[0]:
        raise GensisError(
            f"kNN needs one label per test feature, got {tuple(test_labels.shape)} labels "
            f"for {test_features.shape[0]} features"
        )
    preds = knn_predict(
        train_features,
        train_labels,
        test_features,
        k=k,
        temperature=temperature,
        num_classes=num_classes,
        chunk_size=chunk_size,
    )
    result: dict[int, float] = {}
    for kk, p in preds.items():
        target = test_labels.to(device=p.device, dtype=torch.long)
        hit = p == target
        result[kk] = 100.0 * hit.float().mean().item() if p.numel() else 0.0
        if correct is not None:
            correct[kk] = hit.cpu()
    return result


def knn_ks_used(knn_k, n_train: int, source: str, warn: bool = True) -> tuple[int, ...]:
    """The k actually used: at most the training set. The figures are recorded under it, so
    that "k=200" never labels a vote among 64 images."""
    too_big = sorted({int(k) for k in knn_k if int(k) > n_train})
    if too_big and warn:
        log.warning(
            "knn_k=%s: %s only has %d training images, so k=%d is used (and reported) instead",
            too_big,
            source,
            n_train,
            n_train,
        )
    return tuple(sorted({min(int(k), n_train) for k in knn_k}))
