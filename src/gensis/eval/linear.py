"""Linear probe on frozen, precomputed features.

Standard self-supervised linear evaluation (e.g. DINO, Caron et al. 2021, Sec. 4.1; MAE, He
et al. 2022, App. A.2) trains a linear classifier on top of a frozen backbone. Here the
backbone's features are computed once and cached, and the probe is trained on those fixed
vectors *without* data augmentation: that is what makes it cheap (seconds on a CPU instead
of hours of backbone forwards) and also why its accuracy is usually a little below the
augmented protocol of the papers.

Following MAE, features are standardised with the train mean / std (a BatchNorm without
affine parameters in front of the linear layer). Hyper-parameters are chosen honestly: every
``lr x weight_decay`` pair is trained on a split of the *train* features and scored on the
held-out rest; the best pair is refit on the full train set and only then is the test set
touched, once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from gensis.errors import GensisError
from gensis.eval.metrics import binary_auc, binary_f1, top_k_accuracy
from gensis.eval.significance import encode_correct
from gensis.runtime.device import resolve_device

# AdamW rather than SGD: its per-coordinate step is insensitive to how correlated and
# anisotropic SSL features are (standardising fixes scale, not correlation), so one decade
# per lr suffices where SGD would need a wider lr grid. Decoupled decay bounds the weights
# near 1 / weight_decay whatever the lr, so 0 / 0.1 / 1 run from none (the papers' usual
# setting) to strong, which wins on small or noisy train sets. lr 1e-1 is there for small
# train sets, where 100 epochs are few steps; 1e-3 for large ones. All 9 pairs train side by
# side (see _fit_grid), so the grid costs about two single runs, not nine.
DEFAULT_LRS: tuple[float, ...] = (1e-3, 1e-2, 1e-1)
DEFAULT_WEIGHT_DECAYS: tuple[float, ...] = (0.0, 0.1, 1.0)
_BN_EPS = 1e-6  # MAE's BatchNorm1d(affine=False, eps=1e-6)
_EVAL_CHUNK = 8192


@dataclass
class LinearClassifier:
    """A trained probe: ``((x - mean) / std) @ weight + bias``."""

    mean: Tensor  # (D,)
    std: Tensor  # (D,)
    weight: Tensor  # (D, C)
    bias: Tensor  # (C,)

    @torch.no_grad()
    def scores(self, features: Tensor) -> Tensor:
        """Logits ``(N, C)`` on the classifier's device, computed in chunks."""
        out = [
            ((chunk.to(self.weight.device, torch.float32) - self.mean) / self.std) @ self.weight + self.bias
            for chunk in features.split(_EVAL_CHUNK)
        ]
        return torch.cat(out) if out else self.weight.new_zeros(0, self.weight.shape[1])

    @torch.no_grad()
    def predict(self, features: Tensor) -> Tensor:
        """Predicted labels ``(N,)``."""
        return self.scores(features).argmax(dim=1)


def _stratified_split(labels: Tensor, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Per-class random split; every class keeps at least one train example."""
    gen = torch.Generator().manual_seed(seed)
    train_idx, val_idx = [], []
    for c in labels.unique().tolist():  # sorted, so the split depends only on seed + labels
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n_val = min(round(val_fraction * idx.numel()), idx.numel() - 1)
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return torch.cat(train_idx).sort().values, torch.cat(val_idx).sort().values


# long: one batched fit of every (lr, wd) of the grid; its argument list and docstring are half of it
def _fit_grid(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    grid: Sequence[tuple[float, float]],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    bar: tqdm,
) -> list[LinearClassifier]:
    """Train one probe per ``(lr, weight_decay)`` with AdamW and a per-step cosine LR.

    All G candidates are trained side by side on the same seeded mini-batches as one
    ``(D+1, G, C)`` tensor (the last row is the bias, fed by a constant-1 input column): one
    matmul gives every candidate's logits and one gives every gradient, and each candidate
    gets exactly the gradient it would get alone. The softmax cross-entropy gradient
    ``x^T (softmax - onehot) / B`` is written out and so is AdamW (Loshchilov & Hutter 2019,
    Alg. 2, step for step as ``torch.optim.AdamW``), because lr and decay are per-candidate
    vectors here and per-step overhead dominates such small problems. A whole grid costs
    little more than one run.
    """
    x = features.to(device, torch.float32)
    y = labels.to(device, torch.long)
    var, mean = torch.var_mean(x, dim=0, unbiased=False)
    std = (var + _BN_EPS).sqrt()
    n, dim = x.shape
    g, c = len(grid), num_classes
    xa = torch.empty(n, dim + 1, device=device)
    xa[:, :dim] = x
    xa[:, :dim].sub_(mean).div_(std)
    xa[:, dim] = 1.0

    # Zero init: the problem is convex, so this loses nothing and removes an RNG dependence.
    theta = torch.zeros(dim + 1, g, c, device=device)
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    base_lr = torch.tensor([lr for lr, _ in grid], device=device).view(1, g, 1)
    decay = torch.tensor([wd for _, wd in grid], device=device).view(1, g, 1).repeat(dim + 1, 1, 1)
    decay[dim] = 0.0  # no weight decay on the bias
    beta1, beta2, eps = 0.9, 0.999, 1e-8  # torch.optim.AdamW defaults
    minus_one = torch.full((batch_size, g, 1), -1.0, device=device)

    gen = torch.Generator().manual_seed(seed)  # CPU generator: same shuffles on any device
    total, step = epochs * math.ceil(n / batch_size), 0
    with _few_threads(device):
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen).to(device)
            for idx in perm.split(batch_size):
                b = idx.numel()
                xb = xa.index_select(0, idx)  # several times faster than xa[idx] on CPU
                logits = (xb @ theta.view(dim + 1, g * c)).view(b, g, c)
                # Hand-written softmax: ~6x faster than Tensor.softmax over a last dim of ~10.
                prob = logits.sub_(logits.amax(dim=2, keepdim=True)).exp_()
                prob.div_(prob.sum(dim=2, keepdim=True))
                target = y.index_select(0, idx).view(b, 1, 1).expand(b, g, 1)
                prob.scatter_add_(2, target, minus_one[:b]).div_(b)  # d(mean CE)/d(logits)
                grad = (xb.T @ prob.view(b, g * c)).view(dim + 1, g, c)

                step += 1
                # Cosine from base lr to 0 over all steps (Loshchilov & Hutter 2017, SGDR
                # without restarts); the decoupled decay follows the lr as in torch.
                lr = base_lr * (0.5 * (1.0 + math.cos(math.pi * (step - 1) / total)))
                theta.mul_(1.0 - lr * decay)
                m.lerp_(grad, 1.0 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = v.sqrt().div_(math.sqrt(1.0 - beta2**step)).add_(eps)
                theta.sub_(denom.reciprocal_().mul_(m).mul_(lr / (1.0 - beta1**step)))
            bar.update(1)
    return [LinearClassifier(mean, std, theta[:dim, i].clone(), theta[dim, i].clone()) for i in range(g)]


@contextmanager
def _few_threads(device: torch.device) -> Iterator[None]:
    """Run the CPU training loop on one intra-op thread.

    Each step is a few small kernels: splitting them across threads buys nothing, and when
    the cores are shared with other work (data loading, another job), waiting for a
    descheduled worker thread made steps 10-100x slower in our measurements.
    """
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _select(
    fit: Callable[..., list[LinearClassifier]],
    features: Tensor,
    labels: Tensor,
    grid: list[tuple[float, float]],
    val_fraction: float,
    seed: int,
    bar: tqdm,
) -> list[dict]:
    """Train every grid point on a stratified train split, score it on the held-out rest."""
    tr_idx, va_idx = _stratified_split(labels, val_fraction, seed)
    if va_idx.numel() == 0:
        raise GensisError(
            "linear probe validation split is empty: raise val_fraction or give a single lr and weight decay"
        )
    cands = fit(features[tr_idx.to(features.device)], labels[tr_idx], grid=grid, bar=bar)
    x_val = features[va_idx.to(features.device)]
    y_val = labels[va_idx].to(cands[0].weight.device)
    results = []
    for (lr, wd), clf in zip(grid, cands, strict=True):
        scores = clf.scores(x_val)
        results.append(
            dict(
                lr=lr,
                weight_decay=wd,
                val_top1=top_k_accuracy(scores, y_val, 1),
                val_loss=F.cross_entropy(scores, y_val).item(),
            )
        )
    return results


# long: the probe's protocol in one place (grid, held-out choice, final fit); the docstring states it
def linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    *,
    num_classes: int | None = None,
    epochs: int = 100,
    batch_size: int = 256,
    lrs: Sequence[float] = DEFAULT_LRS,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    val_fraction: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict:
    """Linear evaluation of frozen precomputed features (no augmentation, hence cheap).

    1. Split the train features per class into ``1 - val_fraction`` / ``val_fraction``
       (seeded); train every ``lr x weight_decay`` pair on the first part and pick the best
       validation top-1 (ties: lower validation cross-entropy, then grid order).
    2. Refit the chosen pair on the full train set and report test top-1 / top-5 once.
    Standardisation statistics always come from the data being trained on. With a single
    grid point no split is made and ``val_top1`` is ``None``.

    ``num_classes`` defaults to ``max(train and test labels) + 1``, so a test class never
    seen in training still has a (never-trained) output and counts as an error.

    Returns ``dict(top1, correct, top5, best_lr, best_weight_decay, val_top1, epochs, num_classes,
    selection)``, plus ``auc`` and ``f1`` (positive class 1) for two classes; accuracies are
    percentages, ``top5`` is ``None`` below 5 classes and ``selection`` lists
    ``{lr, weight_decay, val_top1, val_loss}`` for every grid point;
    ``correct`` is one '1' or '0' per test image (:mod:`gensis.eval.significance`).
    Deterministic on CPU for a given ``seed``.
    """
    if train_features.ndim != 2 or test_features.ndim != 2:
        raise GensisError("linear probe needs 2-D features (N, D)")
    if train_features.shape[1] != test_features.shape[1]:
        raise GensisError(
            f"linear probe train and test features differ in dimension: "
            f"{train_features.shape[1]} vs {test_features.shape[1]}"
        )
    if (train_labels.shape, test_labels.shape) != (train_features.shape[:1], test_features.shape[:1]):
        raise GensisError("linear probe needs exactly one label per feature row")
    if epochs < 1 or batch_size < 1:
        raise GensisError(f"linear probe needs epochs, batch_size >= 1, got {epochs}, {batch_size}")
    if not 0.0 <= val_fraction < 1.0:
        raise GensisError(f"linear probe val_fraction must be in [0, 1), got {val_fraction}")
    grid = [(float(lr), float(wd)) for lr in lrs for wd in weight_decays]
    # lr * wd >= 1 would flip or zero the weights in AdamW's decoupled decay step.
    if not grid or any(lr <= 0 or wd < 0 or lr * wd >= 1 for lr, wd in grid):
        raise GensisError("linear probe needs lr > 0, weight decay >= 0, lr * weight decay < 1")

    y_train = train_labels.detach().to("cpu", torch.long)
    y_test = test_labels.detach().to("cpu", torch.long)
    if y_train.unique().numel() < 2:
        raise GensisError("linear probe needs at least 2 classes in the training labels")
    all_labels = torch.cat([y_train, y_test])
    if all_labels.min().item() < 0:
        raise GensisError("linear probe labels must be >= 0")
    label_max = int(all_labels.max().item())
    n_classes = label_max + 1 if num_classes is None else int(num_classes)
    if label_max >= n_classes:
        raise GensisError(f"linear probe num_classes={n_classes} but labels go up to {label_max}")

    dev = resolve_device(str(device))
    fit = partial(_fit_grid, num_classes=n_classes, epochs=epochs, batch_size=batch_size, seed=seed, device=dev)
    selection: list[dict] = []
    best_lr, best_wd = grid[0]
    val_top1: float | None = None
    with tqdm(total=epochs * (1 + (len(grid) > 1)), desc="linear probe", unit="epoch", disable=not progress) as bar:
        if len(grid) > 1:
            # Selection sees only the train features and labels; the test set comes later.
            selection = _select(fit, train_features, y_train, grid, val_fraction, seed, bar)
            # min() keeps the first of equal keys, so full ties go to grid order.
            best = min(selection, key=lambda r: (-r["val_top1"], r["val_loss"]))
            best_lr, best_wd, val_top1 = best["lr"], best["weight_decay"], best["val_top1"]
        (clf,) = fit(train_features, y_train, grid=[(best_lr, best_wd)], bar=bar)

    scores = clf.scores(test_features)
    y_test = y_test.to(dev)
    binary = {}
    if n_classes == 2 and y_test.unique().numel() == 2:  # what the binary tasks report (PCam, Gen-SIS)
        binary = dict(auc=binary_auc(scores[:, 1] - scores[:, 0], y_test), f1=binary_f1(scores.argmax(dim=1), y_test))
    return dict(
        top1=top_k_accuracy(scores, y_test, 1),
        correct=encode_correct((scores.argmax(dim=1) == y_test).tolist()),
        top5=top_k_accuracy(scores, y_test, 5) if n_classes >= 5 else None,
        **binary,
        best_lr=best_lr,
        best_weight_decay=best_wd,
        val_top1=val_top1,
        epochs=epochs,
        num_classes=n_classes,
        selection=selection,
    )
