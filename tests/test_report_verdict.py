"""The report's verdicts: a stage that did not do its job is flagged, with its number."""

from __future__ import annotations

import math

from gensis.pipeline.verdict import stage1, stage2, stage3


def test_stage1_flags_a_loss_near_its_uniform_value() -> None:
    uniform = math.log(2048)  # 7.62
    assert stage1([{"loss": 7.48}, {"loss": 7.25}], "dino", 2048).ok is False  # the first CIFAR-10 CPU run
    good = stage1([{"loss": 6.9}, {"lr": 0.1}, {"loss": 6.0}], "dino", 1024)
    assert good.ok and "6.90 -> 6.00" in good.text and f"{math.log(1024):.2f}" in good.text
    assert uniform > 7.6
    with_knn = stage1([{"loss": 6.76}, {"loss": 6.61, "knn_top1_k20": 94.17}], "dino", 1024)
    assert not with_knn.ok and "online kNN k=20 94.2 %" in with_knn.text and "train longer" in with_knn.text
    assert stage1([], "dino", 1024).ok is False
    assert stage1([{"loss": 5.0}, {"loss": 4.0}], "simclr", 1024).ok


def test_stage2_against_the_ceiling() -> None:
    quality = {"sources": 500, "retrieval_top1": 8.5, "retrieval_median_rank": 21,
               "ceiling": {"retrieval_top1": 12.6}, "chance": {"retrieval_top1": 0.07}}
    v = stage2(quality)
    assert v.ok and "8.5 %" in v.text and "12.6 %" in v.text
    bad = stage2({**quality, "retrieval_top1": 0.3, "retrieval_median_rank": 650})
    assert not bad.ok and "not views of their source" in bad.text
    # PCam from a converged stage 1: 296x chance, under half of the real views' 16.4 %
    weaker = stage2({**quality, "retrieval_top1": 7.4, "ceiling": {"retrieval_top1": 16.4},
                     "chance": {"retrieval_top1": 0.025}})
    assert not weaker.ok and "less closely than real stage-1 views" in weaker.text
    assert stage2(None).ok is False


def test_stage3_gain_and_disentanglement_loss() -> None:
    results = {"gen-dino": {"knn_top1": {"20": 96.0, "200": 90.0}, "linear": {"top1": 99.0}},
               "control": {"knn_top1": {"20": 95.5, "200": 90.0}, "linear": {"top1": 98.0}}}
    v = stage3(results, [{"loss_dis": 6.9}, {"loss_dis": 5.5}], 1024)
    assert v.ok and "kNN k=20 +0.50" in v.text and "linear +1.00" in v.text
    flat = stage3(results, [{"loss_dis": 6.93}, {"loss_dis": 6.92}], 1024)
    assert not flat.ok and "stays near uniform" in flat.text
