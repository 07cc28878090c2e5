"""Evaluation math: weighted kNN (Wu et al. 2018 / DINO) and the frozen-feature linear probe."""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode
from tqdm.auto import tqdm

from gensis.errors import GensisError
from gensis.eval.knn import knn_accuracy, knn_ks_used, knn_predict
from gensis.eval.linear import LinearClassifier, _fit_grid, _select, _stratified_split, linear_probe
from gensis.eval.metrics import binary_auc, binary_f1, top_k_accuracy


def _unit(deg: float, scale: float = 1.0) -> list[float]:
    return [scale * math.cos(math.radians(deg)), scale * math.sin(math.radians(deg))]


def _blobs(n: int, dim: int, classes: int, spread: float, seed: int) -> tuple[Tensor, Tensor]:
    """Gaussian blobs; the class centres are the same for every ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=torch.Generator().manual_seed(1234)) * spread
    labels = torch.arange(n) % classes
    return centers[labels] + torch.randn(n, dim, generator=gen), labels


# ---------------------------------------------------------------------------------- kNN


def _hand_example() -> tuple[Tensor, Tensor, Tensor]:
    # Query at 0 deg. Neighbours by cosine: A (0 deg, class 0, sim 1), then B and C (+-30 deg,
    # class 1, sim cos 30 = 0.866), then D (180 deg, class 0, sim -1). Norms differ on
    # purpose: only the direction may count.
    train = torch.tensor([_unit(0, 5.0), _unit(30, 0.5), _unit(-30, 2.0), _unit(180, 3.0)])
    labels = torch.tensor([0, 1, 1, 0])
    test = torch.tensor([_unit(0, 0.1)])
    return train, labels, test


def test_knn_hand_computed_weighted_vote() -> None:
    train, labels, test = _hand_example()
    t = 0.07
    # k=1: only A votes.  k=3: class 0 gets exp(1/T), class 1 gets 2*exp(cos30/T).
    vote0, vote1 = math.exp(1.0 / t), 2 * math.exp(math.cos(math.radians(30)) / t)
    assert vote0 > vote1  # ratio ~3.4: the weighted vote picks class 0 ...
    # ... although a plain majority of the 3 neighbours (B, C) would say class 1.
    preds = knn_predict(train, labels, test, k=(1, 3), temperature=t)
    assert preds[1].tolist() == [0]
    assert preds[3].tolist() == [0]
    # A hot temperature flattens the weights towards a plain majority vote: 2 x ~1 > 1 x ~1.
    hot = knn_predict(train, labels, test, k=3, temperature=100.0)
    assert hot[3].tolist() == [1]
    # k=4 adds D (class 0, weight exp(-1/T) ~ 0): no change at T=0.07, and at T=100 it ties
    # the count 2 vs 2 but the class-0 weights exp(0.01) + exp(-0.01) < 2 exp(0.00866).
    assert knn_predict(train, labels, test, k=4, temperature=t)[4].tolist() == [0]
    assert knn_predict(train, labels, test, k=4, temperature=100.0)[4].tolist() == [1]


def test_knn_chunking_large_k_and_no_mutation() -> None:
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(50, 8, generator=gen) * 3
    labels = torch.randint(0, 4, (50,), generator=gen)
    test = torch.randn(37, 8, generator=gen) * 3
    copies = (train.clone(), labels.clone(), test.clone())

    whole = knn_predict(train, labels, test, k=(1, 5, 20), chunk_size=10_000)
    for chunk in (1, 7, 36):
        chunked = knn_predict(train, labels, test, k=(1, 5, 20), chunk_size=chunk)
        assert all(torch.equal(whole[k], chunked[k]) for k in whole)
    # k beyond the train set is clipped to it (same as k = 50) and keyed by the request.
    big = knn_predict(train, labels, test, k=(50, 500))
    assert set(big) == {50, 500} and torch.equal(big[500], big[50])
    # Caller tensors are untouched (no in-place normalisation).
    assert all(torch.equal(a, b) for a, b in zip((train, labels, test), copies, strict=True))
    assert knn_predict(train, labels, test, k=5)[5].shape == (37,)


def test_knn_separated_clusters_and_random_labels() -> None:
    x_train, y_train = _blobs(1000, 64, 10, spread=4.0, seed=0)
    x_test, y_test = _blobs(500, 64, 10, spread=4.0, seed=1)
    acc = knn_accuracy(x_train, y_train, x_test, y_test, k=(20, 200))
    assert acc[20] == 100.0 and acc[200] > 99.0

    gen = torch.Generator().manual_seed(2)
    rand = knn_accuracy(
        torch.randn(2000, 32, generator=gen),
        torch.randint(0, 10, (2000,), generator=gen),
        torch.randn(2000, 32, generator=gen),
        torch.randint(0, 10, (2000,), generator=gen),
        k=20,
    )
    assert 5.0 < rand[20] < 15.0  # chance is 10 %


def test_knn_rejects_bad_input() -> None:
    x, y = torch.randn(10, 4), torch.zeros(10, dtype=torch.long)
    with pytest.raises(GensisError):
        knn_predict(x, y, torch.randn(3, 5))
    with pytest.raises(GensisError):
        knn_predict(x, y, x, k=0)
    with pytest.raises(GensisError):
        knn_predict(x, y, x, temperature=0.0)


def test_knn_refusals_name_the_shapes_they_got() -> None:
    """Each bad shape is a GensisError whose message names what was given (train 5 x 3, so that
    N and D differ): one 1-D input alone is refused, and labels of the wrong count or rank."""
    x, y = torch.zeros(5, 3), torch.zeros(5, dtype=torch.long)
    with pytest.raises(GensisError, match=r"^kNN needs 2-D features \(N, D\), got train \(5,\) and test \(2, 3\)$"):
        knn_predict(torch.zeros(5), y, torch.zeros(2, 3))
    with pytest.raises(GensisError, match=r"^kNN needs 2-D features \(N, D\), got train \(5, 3\) and test \(3,\)$"):
        knn_predict(x, y, torch.zeros(3))
    with pytest.raises(GensisError, match=r"^kNN train and test features differ in dimension: 3 vs 4$"):
        knn_predict(x, y, torch.zeros(2, 4))
    per_label = r"^kNN needs one label per train feature, got \({}\) labels for 5 features$"
    with pytest.raises(GensisError, match=per_label.format("4,")):
        knn_predict(x, torch.zeros(4, dtype=torch.long), x)
    with pytest.raises(GensisError, match=per_label.format("5, 1")):
        knn_predict(x, torch.zeros(5, 1, dtype=torch.long), x)


def test_knn_needs_one_training_feature_and_one_is_enough() -> None:
    """An empty memory bank is refused in words; a single train feature is every test row's only
    neighbour, so k=5 (clipped to 1) predicts its label for all rows."""
    with pytest.raises(GensisError, match=r"^kNN needs at least one training feature$"):
        knn_predict(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), torch.ones(2, 3))
    one = knn_predict(torch.tensor([[1.0, 0.0]]), torch.tensor([2]), torch.tensor([[0.0, 1.0], [-1.0, 0.0]]), k=5)
    assert one[5].tolist() == [2, 2]


@pytest.mark.parametrize(("k", "shown"), [(0, "0"), ((5, -1), r"\(5, -1\)"), ([], r"\[\]")])
def test_knn_refuses_a_k_below_1_and_shows_it(k, shown) -> None:
    """The refusal of a bad k quotes the k given (repr), whatever its form."""
    x, y = torch.randn(4, 2), torch.zeros(4, dtype=torch.long)
    with pytest.raises(GensisError, match=rf"^kNN k must be a positive integer or a list of them, got {shown}$"):
        knn_predict(x, y, x, k=k)


def test_knn_ks_used_clips_to_the_train_set_and_warns_only_when_it_does(caplog) -> None:
    """k equal to the train set is not too big (no warning); a k above it becomes n_train and is said
    once, naming every clipped k; warn=False stays silent."""
    with caplog.at_level(logging.WARNING, logger="gensis.eval"):
        assert knn_ks_used((20, 200), 200, "x.zip") == (20, 200)
        assert knn_ks_used((20,), 64, "x.zip") == (20,)
        assert knn_ks_used((20, 200), 64, "x.zip", warn=False) == (20, 64)
        assert caplog.records == []
        assert knn_ks_used((500, 20, 200), 64, "x.zip") == (20, 64)
    assert [r.getMessage() for r in caplog.records] == [
        "knn_k=[200, 500]: x.zip only has 64 training images, so k=64 is used (and reported) instead"
    ]


# --------------------------------------------------------------------------- linear probe

FAST = dict(epochs=15, batch_size=64, lrs=(1e-3, 1e-2), weight_decays=(0.0, 0.1))


def test_linear_probe_separable_blobs() -> None:
    x_train, y_train = _blobs(1000, 32, 5, spread=1.0, seed=0)
    x_test, y_test = _blobs(500, 32, 5, spread=1.0, seed=1)
    res = linear_probe(x_train, y_train, x_test, y_test, **FAST)
    assert res["top1"] > 95.0 and res["top5"] == 100.0
    assert res["val_top1"] > 90.0 and res["epochs"] == 15 and len(res["selection"]) == 4
    assert res["best_lr"] in (1e-3, 1e-2) and res["best_weight_decay"] in (0.0, 0.1)


def test_linear_probe_random_labels_near_chance() -> None:
    gen = torch.Generator().manual_seed(0)
    x_train, x_test = torch.randn(1000, 32, generator=gen), torch.randn(1000, 32, generator=gen)
    y_train = torch.randint(0, 5, (1000,), generator=gen)
    y_test = torch.randint(0, 5, (1000,), generator=gen)
    assert linear_probe(x_train, y_train, x_test, y_test, **FAST)["top1"] < 40.0


def test_linear_probe_deterministic_and_blind_to_test_set() -> None:
    x_train, y_train = _blobs(600, 32, 5, spread=0.3, seed=0)  # overlapping: grid points differ
    x_test, y_test = _blobs(300, 32, 5, spread=0.3, seed=1)
    copies = [t.clone() for t in (x_train, y_train, x_test, y_test)]
    a = linear_probe(x_train, y_train, x_test, y_test, **FAST)
    b = linear_probe(x_train, y_train, x_test, y_test, **FAST)
    assert a == b
    assert all(torch.equal(t, c) for t, c in zip((x_train, y_train, x_test, y_test), copies, strict=True))
    # All-wrong test labels: the selection must not move, only the reported test score.
    wrong = linear_probe(x_train, y_train, x_test, (y_test + 1) % 5, **FAST)
    keys = ("best_lr", "best_weight_decay", "val_top1", "selection")
    assert all(wrong[key] == a[key] for key in keys)
    assert wrong["top1"] < a["top1"]
    # Another seed draws another validation split.
    other = linear_probe(x_train, y_train, x_test, y_test, **FAST, seed=1)
    assert other["selection"] != a["selection"]


def test_grid_training_matches_torch_adamw() -> None:
    """Candidates trained side by side equal independent torch.optim.AdamW runs."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(100, 6, generator=gen) * 4 + 1, torch.randint(0, 3, (100,), generator=gen)
    grid = [(1e-2, 0.5), (3e-3, 0.0)]
    epochs, bs = 3, 16

    cpu, bar = torch.device("cpu"), tqdm(disable=True)
    probes = _fit_grid(x, y, 3, grid, epochs=epochs, batch_size=bs, seed=7, device=cpu, bar=bar)
    mean, std = x.mean(0), (x.var(0, unbiased=False) + 1e-6).sqrt()
    xs = (x - mean) / std
    total = epochs * math.ceil(100 / bs)
    for (lr, wd), probe in zip(grid, probes, strict=True):
        w = torch.zeros(6, 3, requires_grad=True)
        b = torch.zeros(3, requires_grad=True)
        groups = [{"params": [w], "weight_decay": wd}, {"params": [b], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=lr)
        shuffle, step = torch.Generator().manual_seed(7), 0
        for _ in range(epochs):
            for idx in torch.randperm(100, generator=shuffle).split(bs):
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
                opt.zero_grad()
                F.cross_entropy(xs[idx] @ w + b, y[idx]).backward()
                opt.step()
                step += 1
        torch.testing.assert_close(probe.weight, w.detach(), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(probe.bias, b.detach(), rtol=1e-4, atol=1e-5)


def test_linear_probe_label_edge_cases() -> None:
    x_train, y_train = _blobs(300, 8, 3, spread=3.0, seed=0)
    x_test, y_test = _blobs(60, 8, 3, spread=3.0, seed=1)
    fast = dict(epochs=3, batch_size=64, lrs=(1e-2,), weight_decays=(0.0,))
    # One grid point: no split, no val score; < 5 classes: no top-5.
    res = linear_probe(x_train, y_train, x_test, y_test, **fast)
    assert res["val_top1"] is None and res["top5"] is None and res["num_classes"] == 3
    # Test set covering only one class; and a test class (3) never seen in training.
    only0 = linear_probe(x_train, y_train, x_test[y_test == 0], y_test[y_test == 0], **fast)
    assert only0["top1"] > 90.0
    unseen = linear_probe(x_train, y_train, x_test, torch.full_like(y_test, 3), **fast)
    assert unseen["num_classes"] == 4 and unseen["top1"] == 0.0
    with pytest.raises(GensisError, match="at least 2 classes in the training labels"):
        linear_probe(x_train, torch.zeros_like(y_train), x_test, y_test, **fast)
    with pytest.raises(GensisError, match="num_classes"):
        linear_probe(x_train, y_train, x_test, y_test, num_classes=2, **fast)
    with pytest.raises(GensisError, match="lr \\* weight decay < 1"):
        bad = {**fast, "lrs": (1.0,), "weight_decays": (2.0,)}
        linear_probe(x_train, y_train, x_test, y_test, **bad)


def test_top_k_accuracy() -> None:
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 2, 0])
    assert top_k_accuracy(scores, labels, 1) == pytest.approx(100 / 3)
    assert top_k_accuracy(scores, labels, 2) == pytest.approx(200 / 3)
    assert top_k_accuracy(scores, labels, 3) == 100.0
    with pytest.raises(GensisError):
        top_k_accuracy(scores, labels, 4)


@pytest.mark.gpu
def test_eval_math_on_cuda_matches_cpu() -> None:
    assert torch.cuda.is_available(), "pytest -m gpu needs a CUDA device"
    x_train, y_train = _blobs(600, 32, 5, spread=1.0, seed=0)
    x_test, y_test = _blobs(300, 32, 5, spread=1.0, seed=1)
    cpu = knn_predict(x_train, y_train, x_test, k=(1, 20), chunk_size=100)
    gpu = knn_predict(x_train.cuda().half(), y_train.cuda(), x_test, k=(1, 20), chunk_size=100)
    for k in cpu:
        assert gpu[k].device.type == "cuda"
        assert (gpu[k].cpu() == cpu[k]).float().mean() > 0.99  # fp16 may flip near-ties
    a = linear_probe(x_train, y_train, x_test, y_test, **FAST)
    b = linear_probe(x_train, y_train, x_test, y_test, **FAST, device="cuda")
    assert abs(a["top1"] - b["top1"]) < 2.0
    # Labels that arrive on the GPU (train or test) give the probe of labels on the CPU.
    on_gpu = [
        linear_probe(x_train, y_train.cuda(), x_test, y_test, **FAST, device="cuda"),
        linear_probe(x_train, y_train, x_test, y_test.cuda(), **FAST, device="cuda"),
    ]
    assert [r["correct"] for r in on_gpu] == [b["correct"]] * 2


def test_binary_auc_and_f1_hand_computed() -> None:
    labels = torch.tensor([0, 0, 1, 1, 0, 1])
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.8, 0.9])
    # Pairs (pos, neg) ranked right: 0.35>0.1; 0.8>0.1, 0.8>0.4, 0.8=0.8 (1/2); 0.9 beats all 3.
    assert binary_auc(scores, labels) == pytest.approx(100 * (1 + 2.5 + 3) / 9)
    assert binary_auc(-scores, labels) == pytest.approx(100 - 100 * 6.5 / 9)
    preds = torch.tensor([0, 1, 1, 1, 0, 0])  # tp 2, fp 1, fn 1
    assert binary_f1(preds, labels) == pytest.approx(100 * 2 * 2 / (2 * 2 + 1 + 1))
    assert binary_f1(torch.zeros(6, dtype=torch.long), labels) == 0.0
    with pytest.raises(GensisError):
        binary_auc(scores, torch.ones(6, dtype=torch.long))


def test_linear_probe_reports_auc_and_f1_for_two_classes() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g)
    y = (x[:, 0] > 0).long()
    r = linear_probe(x[:150], y[:150], x[150:], y[150:], epochs=30, lrs=(0.1,), weight_decays=(0.0,))
    assert r["auc"] > 95 and r["f1"] > 85
    three = linear_probe(
        x[:150], y[:150] + (x[:150, 1] > 1), x[150:], y[150:], epochs=2, lrs=(0.1,), weight_decays=(0.0,)
    )
    assert "auc" not in three


def _line() -> tuple[Tensor, Tensor]:
    """12 points on a line, class 1 right of 0: any probe that learns the sign separates them."""
    x = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]] * 3)
    return x, (x[:, 0] > 0).long()


def test_linear_probe_refusals_say_what_is_wrong() -> None:
    """Each bad input is a GensisError whose whole message says what is wrong: a 1-D feature tensor on
    either side, differing dimensions, a label count off by one, epochs or batch size 0, val_fraction 1,
    lr 0, lr * weight decay exactly 1, a negative decay, one training class, a negative label, and
    several grid points with nothing held out to choose among them."""
    x, y = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1] * 3)
    two_d = "linear probe needs 2-D features (N, D)"
    lr_wd = "linear probe needs lr > 0, weight decay >= 0, lr * weight decay < 1"
    cases = [
        (dict(train_features=x[:, 0]), two_d),
        (dict(test_features=x[:, 0]), two_d),
        (dict(test_features=torch.zeros(6, 4)), "linear probe train and test features differ in dimension: 3 vs 4"),
        (dict(test_labels=y[:5]), "linear probe needs exactly one label per feature row"),
        (dict(epochs=0), "linear probe needs epochs, batch_size >= 1, got 0, 256"),
        (dict(batch_size=0), "linear probe needs epochs, batch_size >= 1, got 1, 0"),
        (dict(val_fraction=1.0), "linear probe val_fraction must be in [0, 1), got 1.0"),
        (dict(lrs=(0.0,)), lr_wd),
        (dict(lrs=(0.5,), weight_decays=(2.0,)), lr_wd),
        (dict(weight_decays=(-0.1,)), lr_wd),
        (
            dict(train_labels=torch.zeros(6, dtype=torch.long)),
            "linear probe needs at least 2 classes in the training labels",
        ),
        (dict(test_labels=torch.tensor([0, 1, 0, 1, 0, -1])), "linear probe labels must be >= 0"),
        (
            dict(lrs=(0.1, 0.01), val_fraction=0.0),
            "linear probe validation split is empty: raise val_fraction or give a single lr and weight decay",
        ),
    ]
    for change, message in cases:
        args = (
            dict(
                train_features=x,
                train_labels=y,
                test_features=x,
                test_labels=y,
                epochs=1,
                lrs=(0.1,),
                weight_decays=(0.0,),
            )
            | change
        )
        with pytest.raises(GensisError, match=f"^{re.escape(message)}$"):
            linear_probe(**args)


def test_linear_probe_accepts_the_edges_of_its_ranges() -> None:
    """epochs = batch size = 1; val_fraction 0 with one grid point (nothing to choose, no split); a
    validation split of one image (0.2 x 5 = 1 of class 0, round(0.2 x 2) = 0 of class 1); and uint8
    features with int32 labels, read as float32 and long: the same result as the float32 / long copy."""
    x, y = _line()
    one = dict(lrs=(0.1,), weight_decays=(0.0,))
    tiny = linear_probe(x, y, x, y, epochs=1, batch_size=1, **one)
    assert tiny["epochs"] == 1 and len(tiny["correct"]) == 12
    assert linear_probe(x, y, x, y, epochs=2, val_fraction=0.0, **one)["val_top1"] is None
    y7 = torch.tensor([0] * 5 + [1] * 2)
    x7 = (y7.float() * 4 - 2).view(7, 1)
    single = linear_probe(x7, y7, x7, y7, epochs=2, lrs=(0.1, 0.01), weight_decays=(0.0,), val_fraction=0.2)
    assert len(single["selection"]) == 2 and single["val_top1"] in (0.0, 100.0)
    grid = dict(epochs=3, batch_size=4, lrs=(0.1, 0.01), weight_decays=(0.0,), val_fraction=0.25)
    x8 = x + 2  # 0, 1, 3, 4
    as_float = linear_probe(x8, y, x8, y, **grid)
    as_int = linear_probe(x8.to(torch.uint8), y.int(), x8.to(torch.uint8), y.int(), **grid)
    assert as_int == as_float and as_float["top1"] == 100.0


def test_stratified_split_hand_counted() -> None:
    """round(val_fraction x n) images of each class are held out, but never a class's last one: classes
    of 10, 2 and 1 images at 0.6 hold out 6, 1 and 0 (round(0.6) = 1, capped at 1 - 1 = 0); the two
    index lists are sorted and together cover every image once."""
    labels = torch.tensor([0, 1, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0])
    train, val = _stratified_split(labels, 0.6, seed=0)
    assert torch.bincount(labels[val], minlength=3).tolist() == [6, 1, 0]
    assert torch.bincount(labels[train], minlength=3).tolist() == [4, 1, 1]
    assert sorted(train.tolist() + val.tolist()) == list(range(13))
    assert train.tolist() == sorted(train.tolist()) and val.tolist() == sorted(val.tolist())


def test_select_scores_every_candidate_on_the_held_out_images() -> None:
    """Every grid point is fitted on the train split alone and scored on the held-out rest by top-1 (%)
    and mean cross-entropy, hand-computed for two fixed probes. All images of a class are one point,
    so which ones are held out (0.4 x 5 = 2 per class) does not matter."""
    labels = torch.tensor([0, 1, 2] * 5)
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])[labels]
    ln = math.log
    # a: logits (ln 4, 0, ln 2), (0, ln 4, ln 2), (0, 0, ln 2): all right, p(true) = 4/7, 4/7, 2/4.
    a = LinearClassifier(
        torch.zeros(2),
        torch.ones(2),
        torch.tensor([[ln(4), 0.0, 0.0], [0.0, ln(4), 0.0]]),
        torch.tensor([0.0, 0.0, ln(2)]),
    )
    # b: logits (0, ln 2, ln 5) for every image: always class 2 (top-2: 2 and 1), p = 1/8, 2/8, 5/8.
    b = LinearClassifier(torch.zeros(2), torch.ones(2), torch.zeros(2, 3), torch.tensor([0.0, ln(2), ln(5)]))
    seen = []

    def fit(x: Tensor, y: Tensor, *, grid: list, bar: object) -> list[LinearClassifier]:
        seen.append((x.shape[0], torch.bincount(y, minlength=3).tolist(), grid))
        return [a, b]

    grid = [(0.1, 0.0), (0.01, 0.5)]
    res = _select(fit, features, labels, grid, 0.4, 0, None)
    assert seen == [(9, [3, 3, 3], grid)]
    assert res == [
        dict(lr=0.1, weight_decay=0.0, val_top1=100.0, val_loss=pytest.approx((2 * ln(7 / 4) + ln(2)) / 3, rel=1e-5)),
        dict(
            lr=0.01,
            weight_decay=0.5,
            val_top1=pytest.approx(100 / 3),
            val_loss=pytest.approx((ln(8) + ln(4) + ln(8 / 5)) / 3, rel=1e-5),
        ),
    ]


def test_linear_probe_keeps_the_grid_point_with_the_best_validation_top1() -> None:
    """Decay this strong (lr x wd = 0.9) keeps the weights near 0 while the undecayed bias learns the
    majority class (3 images in 4): listed first, it still loses to the undecayed probe, which
    separates the two classes."""
    gen = torch.Generator().manual_seed(0)
    y = (torch.arange(40) % 4 == 0).long()
    x = torch.randn(40, 2, generator=gen) * 0.3 + torch.stack([y * 2.0 - 1.0, torch.zeros(40)], 1)
    r = linear_probe(x, y, x, y, epochs=20, batch_size=8, lrs=(0.1,), weight_decays=(9.0, 0.0), val_fraction=0.5)
    assert [s["weight_decay"] for s in r["selection"]] == [9.0, 0.0]
    assert r["selection"][0]["val_top1"] < 100.0 == r["selection"][1]["val_top1"]
    assert (r["best_lr"], r["best_weight_decay"], r["val_top1"]) == (0.1, 0.0, 100.0)


def _stderr_of_probe(**kwargs: object) -> str:
    x, y = _line()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        linear_probe(x, y, x, y, **kwargs)
    return err.getvalue()


def test_linear_probe_progress_bar_counts_epochs() -> None:
    """With progress=True the bar is named 'linear probe', counts epochs, and its total is the epochs
    of the final fit plus as many again for the selection when there is a grid (2 points x 2 epochs:
    4); by default it is silent."""
    shown = _stderr_of_probe(epochs=2, lrs=(0.1,), weight_decays=(0.0, 0.1), progress=True)
    assert re.fullmatch(r"linear probe: 100%\|.*\| 4/4 \[.*(epoch/s|s/epoch)\]", shown.split("\r")[-1].strip())
    alone = _stderr_of_probe(epochs=3, lrs=(0.1,), weight_decays=(0.0,), progress=True)
    assert re.fullmatch(r"linear probe: 100%\|.*\| 3/3 \[.*(epoch/s|s/epoch)\]", alone.split("\r")[-1].strip())
    assert _stderr_of_probe(epochs=2, lrs=(0.1,), weight_decays=(0.0, 0.1)) == ""


def test_linear_probe_reports_which_test_images_it_got_right() -> None:
    """'correct' has one '1' or '0' per test image, in order: split at 0, test points -1.5, 1.5, -1.5,
    1.5 labelled 0, 1, 1, 0 are right, right, wrong, wrong (top-1 50 %). One grid point: the
    selection is an empty list; epochs default to 100."""
    x, y = _line()
    test = torch.tensor([[-1.5], [1.5], [-1.5], [1.5]])
    r = linear_probe(x, y, test, torch.tensor([0, 1, 1, 0]), lrs=(0.1,), weight_decays=(0.0,))
    assert r["correct"] == "1100" and r["top1"] == 50.0
    assert r["selection"] == [] and r["val_top1"] is None and r["epochs"] == 100


def test_linear_probe_default_batch_size_is_256() -> None:
    """The default mini-batch (what the evaluation runs use) is 256: 257 train images make two steps
    per epoch (256 + 1), so the default gives what batch_size=256 gives and not what 257 (one step) gives."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(257, 4, generator=gen), torch.randint(0, 3, (257,), generator=gen)
    x_test, y_test = torch.randn(300, 4, generator=gen), torch.randint(0, 3, (300,), generator=gen)
    one = dict(epochs=1, lrs=(0.1,), weight_decays=(0.0,))
    default = linear_probe(x, y, x_test, y_test, **one)
    assert default == linear_probe(x, y, x_test, y_test, batch_size=256, **one)
    assert default["correct"] != linear_probe(x, y, x_test, y_test, batch_size=257, **one)["correct"]


def test_grid_candidates_do_not_see_each_other() -> None:
    """A candidate trains as it would alone whatever its neighbours: beside lr 100 (logits in the
    hundreds, so a softmax shifted by a max shared across candidates or images would underflow to 0/0),
    lr 1e-2 gives the weights it gives on its own."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    fit = dict(epochs=3, batch_size=16, seed=0, device=torch.device("cpu"), bar=tqdm(disable=True))
    (alone,) = _fit_grid(x, y, 3, [(1e-2, 0.0)], **fit)
    beside, big = _fit_grid(x, y, 3, [(1e-2, 0.0), (100.0, 0.0)], **fit)
    assert big.weight.abs().max() > 30  # the neighbour's logits do reach the hundreds
    torch.testing.assert_close(beside.weight, alone.weight)
    torch.testing.assert_close(beside.bias, alone.bias)


def _tensors(obj: object) -> list[Tensor]:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, list | tuple):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return _tensors(list(obj.values()))
    return []


class _OneDevice(TorchFunctionMode):
    """Refuses any op mixing tensors of two devices, as CUDA does (0-dim CPU scalars, copies and indexing
    by a CPU index excepted, as there)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        devices = {t.device for t in _tensors([args, kwargs]) if t.ndim or t.device.type != "cpu"}
        if len(devices) > 1 and func not in (Tensor.to, Tensor.copy_, Tensor.__setitem__, Tensor.__getitem__):
            raise RuntimeError(f"{getattr(func, '__name__', func)} mixes {devices}")
        return func(*args, **kwargs)


def test_grid_training_keeps_every_tensor_on_the_requested_device() -> None:
    """Asked for another device, the grid moves the CPU features, labels and shuffles there first and no
    step mixes devices (CUDA would refuse): checked without a GPU on PyTorch's shape-only 'meta'
    device, under a mode that refuses mixing as CUDA does; the probes come back on that device."""
    x, y = torch.randn(20, 3), torch.arange(20) % 2
    with _OneDevice():
        probes = _fit_grid(
            x,
            y,
            2,
            [(1e-2, 0.0), (1e-2, 0.1)],
            epochs=2,
            batch_size=8,
            seed=0,
            device=torch.device("meta"),
            bar=tqdm(disable=True),
        )
    assert len(probes) == 2
    for p in probes:
        assert {t.device.type for t in (p.mean, p.std, p.weight, p.bias)} == {"meta"}
        assert (p.mean.shape, p.std.shape, p.weight.shape, p.bias.shape) == ((3,), (3,), (3, 2), (2,))
