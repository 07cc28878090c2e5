"""Stage 1's convergence rule: the loss flat to 2 % of ln K over the last fifth, and the online
kNN k=20 within 1 point of its value at three quarters; the stage-1 verdict says which."""

from __future__ import annotations

import math

from gensis.eval.convergence import convergence
from gensis.pipeline.verdict import stage1

K = 4096  # ln K = 8.318; 2 % of it = 0.1664 nats


def _run(loss_at, knn: dict[int, float], steps: int = 400, every: int = 5) -> list[dict]:
    records = [{"step": s, "epoch": s // 16, "loss": loss_at(s)} for s in range(every, steps + 1, every)]
    return records + [{"step": s, "epoch": s // 16, "knn_top1_k20": v} for s, v in knn.items()]


def test_a_flat_end_with_a_steady_knn_is_converged() -> None:
    m = _run(lambda s: 5.0 + 2.0 * math.exp(-s / 40), {100: 70.0, 300: 71.2, 400: 71.5})
    c = convergence(m, K)
    # the loss between 300 and 320 against 380-400: about 2 exp(-7.75) - 2 exp(-9.75), far under 0.166
    assert c.status == "converged" and c.loss_fall < 0.01 and math.isclose(c.loss_limit, 0.02 * math.log(K))
    assert math.isclose(c.knn_change, 0.3) and c.knn_at == 0.75


def test_a_loss_still_falling_over_the_last_fifth_is_still_learning() -> None:
    # a straight fall of 1.0 nat over 400 steps: about 0.2 nats over the last fifth (limit 0.166)
    c = convergence(_run(lambda s: 7.0 - s / 400, {300: 70.0, 400: 70.5}), K)
    assert c.status == "still learning" and 0.18 < c.loss_fall < 0.22 and "loss fell" in c.why


def test_knn_that_moves_more_than_a_point_in_the_last_quarter_is_still_learning() -> None:
    c = convergence(_run(lambda s: 5.0, {300: 68.0, 400: 69.6}), K)
    assert c.status == "still learning" and math.isclose(c.knn_change, 1.6)
    dropped = convergence(_run(lambda s: 5.0, {300: 70.0, 400: 68.5}), K)  # a fall counts too
    assert dropped.status == "still learning"


def test_without_a_knn_near_three_quarters_it_cannot_tell() -> None:
    c = convergence(_run(lambda s: 5.0, {100: 60.0, 400: 70.0}), K)  # 25 % is too early to stand in
    assert c.status == "unknown" and "train.knn_every" in c.why
    assert convergence([], K).status == "unknown"


def test_the_stage1_verdict_names_convergence_and_warns_while_learning() -> None:
    flat = stage1(_run(lambda s: 5.0 + 2.0 * math.exp(-s / 40), {300: 71.2, 400: 71.5}), "dino", K)
    assert flat.ok and "converged (" in flat.text
    learning = stage1(_run(lambda s: 7.0 - s / 400, {300: 70.0, 400: 70.5}), "dino", K)
    assert learning.status == "warning" and "still learning" in learning.text and "train longer" in learning.text


def _points(loss: dict[int, float], knn: dict[int, float]) -> list[dict]:
    return [{"step": s, "loss": v} for s, v in loss.items()] + [{"step": s, "knn_top1_k20": v} for s, v in knn.items()]


def test_the_windows_hold_their_edges_by_hand() -> None:
    """100 steps: the loss windows are [75, 80] and [95, 100], both ends included; kNN's earlier
    evaluation may stand anywhere in [65, 85], the one nearest to 75 counts."""
    c = convergence(_points({10: 9.0, 75: 2.0, 80: 4.0, 95: 1.0, 100: 1.0}, {}), K)
    assert c.loss_fall == 3.0 - 1.0  # mean(2, 4) - mean(1, 1)
    c = convergence(_points({10: 9.0, 75: 1.0, 95: 1.0, 100: 3.0}, {}), K)
    assert c.loss_fall == 1.0 - 2.0  # a rise counts as movement too
    # the earlier kNN at 66, 74 and 84: 74 is nearest to 75 (not the first, the last or the highest)
    c = convergence(_points({}, {66: 50.0, 74: 60.0, 84: 75.0, 100: 60.5}), K)
    assert (c.knn_at, c.knn_change) == (0.74, 0.5)
    assert convergence(_points({}, {65: 60.0, 100: 60.5}), K).knn_at == 0.65  # the edges count
    assert convergence(_points({}, {85: 60.0, 100: 60.5}), K).knn_at == 0.85
    assert convergence(_points({}, {64: 60.0, 86: 60.0, 100: 60.5}), K).knn_change is None


def test_the_limits_are_strict_for_the_loss_and_inclusive_for_knn() -> None:
    limit = 0.02 * math.log(K)
    loss = {10: 9.0, 20: 9.0, 80: limit, 100: 0.0}  # fell exactly the limit: not flat (it must fall less)
    at_limit = convergence(_points(loss, {75: 60.0, 100: 61.0}), K)  # kNN moved exactly 1 point: flat
    assert at_limit.loss_fall == limit and at_limit.knn_change == 1.0
    assert at_limit.status == "still learning"
    assert convergence(_points({**loss, 80: limit / 2}, {75: 60.0, 100: 61.0}), K).status == "converged"


def test_too_few_points_say_unknown_and_why() -> None:
    # four loss points are enough when the windows hold some (three are not)
    assert convergence(_points({50: 5.0, 78: 4.0, 97: 3.9, 100: 3.9}, {}), K).loss_fall == 4.0 - 3.9
    assert convergence(_points({78: 4.0, 97: 3.9, 100: 3.9}, {}), K).loss_fall is None
    # points, but none in the window at 80 % (or only there): no fall, and no error
    for loss in ({10: 5.0, 20: 5.0, 30: 5.0, 100: 4.0}, {10: 5.0, 20: 5.0, 97: 3.0, 100: 3.0}):
        c = convergence(_points(loss, {}), K)
        assert c.loss_fall is None and c.status == "unknown"
    assert convergence(_points({0: 5.0}, {}) * 4, K).loss_fall is None  # four points, every one at step 0
    c = convergence([], K)
    assert c.status == "unknown" and c.why == (
        "too few loss points in the last fifth (lower train.log_every); no online kNN near three quarters "
        "and at the end (set train.knn_every so one falls between 65 and 85 % of the epochs)"
    )
